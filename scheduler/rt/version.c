/*
 * version.c: the build's version string, alone in its object so that a new
 * commit (the Makefile passes AS_VERSION from git describe) rebuilds this
 * file only.
 */
#include "agentscaler/rt/common.h"

#ifndef AS_VERSION
#define AS_VERSION "0.1.0-dev"
#endif

const char as_version[] = AS_VERSION;
