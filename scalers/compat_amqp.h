/*
 * compat_amqp.h: the one place that knows where rabbitmq-c's headers are.
 * From 0.12 they live under <rabbitmq-c/...> and the old names emit a
 * deprecation #warning, which -Werror turns into a build failure; Debian 12
 * ships 0.11.0 with the old names only (ref/c-event-loop-patterns.md 3).
 * Everything else includes this file, never <amqp.h> directly.
 */
#ifndef AGENTSCALER_COMPAT_AMQP_H
#define AGENTSCALER_COMPAT_AMQP_H

#if defined(__has_include)
#if __has_include(<rabbitmq-c/amqp.h>)
#define AS_AMQP_NEW_PATHS 1	/* rabbitmq-c 0.12 and later */
#endif
#endif

#ifdef AS_AMQP_NEW_PATHS
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/framing.h>
#include <rabbitmq-c/ssl_socket.h>
#include <rabbitmq-c/tcp_socket.h>
#else
#include <amqp.h>		/* Debian 12: 0.11.0 */
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#endif

#endif
