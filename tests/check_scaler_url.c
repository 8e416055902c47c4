/*
 * check_scaler_url.c: the address pieces the Redis and RabbitMQ parsers
 * share (scalers/url.c): the start of an address, the unsupported-scheme
 * message and the server's name, each message word for word as the two
 * parsers wrote it themselves before, and the checks of a source's
 * password sources and timeouts.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/scalers/scaler.h"
#include "scalers/scaler_url.h"
#include "util/testutil.h"

static const struct scaler_url_texts redis_texts = {
	.example = "redis://host:port/db",
	.schemes = "redis://",
};

static const struct scaler_url_texts rmq_texts = {
	.example = "amqp://host:5672/vhost or http://host:15672/vhost",
	.schemes = "amqp://, amqps://, http:// or https://",
};

static const struct {
	const char	*url;
	int		 rabbitmq;
	size_t		 slen;
	const char	*err;	/* the whole message when slen is 0 */
} start_rows[] = {
	{ "redis://h", 0, 5, NULL },
	{ "amqps://h", 1, 5, NULL },
	{ "x+y-z.w://h", 0, 7, NULL },
	{ NULL, 0, 0, "empty address; expected redis://host:port/db" },
	{ "", 0, 0, "empty address; expected redis://host:port/db" },
	{ "", 1, 0, "empty address; expected amqp://host:5672/vhost or "
	    "http://host:15672/vhost" },
	{ "localhost:6379", 0, 0, "address must start with redis://" },
	{ "rabbit:5672", 1, 0, "address must start with amqp://, amqps://, "
	    "http:// or https://" },
	{ "://h", 0, 0, "address must start with redis://" },
};

START_TEST(test_start)
{
	char	 err[160] = "";
	size_t	 slen;

	slen = scaler_url_start(start_rows[_i].url, start_rows[_i].rabbitmq ?
	    &rmq_texts : &redis_texts, err, sizeof err);
	ck_assert_uint_eq(slen, start_rows[_i].slen);
	if (slen == 0)
		ck_assert_str_eq(err, start_rows[_i].err);
	else
		ck_assert_str_eq(err, "");
}
END_TEST

START_TEST(test_unsupported)
{
	char	 err[160];

	ck_assert_int_eq(scaler_url_unsupported("http://h", 4, &redis_texts,
	    err, sizeof err), -AS_EINVAL);
	ck_assert_str_eq(err, "unsupported scheme \"http\"; expected "
	    "redis://");
	ck_assert_int_eq(scaler_url_unsupported("ftp://h", 3, &rmq_texts,
	    err, sizeof err), -AS_EINVAL);
	ck_assert_str_eq(err, "unsupported scheme \"ftp\"; expected amqp://, "
	    "amqps://, http:// or https://");
}
END_TEST

static const struct {
	const char	*host;
	int		 port;
	const char	*name;
} hostport_rows[] = {
	{ "localhost", 6379, "localhost:6379" },
	{ "10.0.0.1", 5672, "10.0.0.1:5672" },
	{ "::1", 6379, "[::1]:6379" },
	{ "fe80::1%eth0", 15672, "[fe80::1%eth0]:15672" },
};

START_TEST(test_hostport)
{
	char	 out[64];

	scaler_url_hostport(hostport_rows[_i].host, hostport_rows[_i].port,
	    out, sizeof out);
	ck_assert_str_eq(out, hostport_rows[_i].name);
}
END_TEST

static const struct {
	double		 connect, command;
	int		 ok;
} timeout_rows[] = {
	{ 0, 0, 1 },
	{ 2.5, 0.1, 1 },
	{ -1, 0, 0 },
	{ 0, -0.5, 0 },
	{ INFINITY, 0, 0 },
	{ 0, NAN, 0 },
};

START_TEST(test_check_source)
{
	struct scaler_source src;
	char		 err[160] = "";

	memset(&src, 0, sizeof src);
	src.connect_timeout = timeout_rows[_i].connect;
	src.command_timeout = timeout_rows[_i].command;
	if (timeout_rows[_i].ok)
		ck_assert_int_eq(scaler_url_check_source(&src, err,
		    sizeof err), 0);
	else {
		ck_assert_int_eq(scaler_url_check_source(&src, err,
		    sizeof err), -AS_EINVAL);
		ck_assert_str_eq(err, "timeouts must be finite and not "
		    "negative");
	}
}
END_TEST

/* Two password sources: scaler_secret_check()'s refusal comes through. */
START_TEST(test_check_source_secret)
{
	struct scaler_source src;
	char		 err[160] = "";

	memset(&src, 0, sizeof src);
	src.password_file = "/nonexistent";
	src.password_env = "X";
	ck_assert_int_eq(scaler_url_check_source(&src, err, sizeof err),
	    -AS_EINVAL);
	ck_assert_str_ne(err, "");
}
END_TEST

static Suite *
scaler_url_suite(void)
{
	Suite	*s = suite_create("scaler_url");
	TCase	*tc = tcase_create("url");

	tcase_add_loop_test(tc, test_start, 0, AS_ARRAY_SIZE(start_rows));
	tcase_add_test(tc, test_unsupported);
	tcase_add_loop_test(tc, test_hostport, 0,
	    AS_ARRAY_SIZE(hostport_rows));
	tcase_add_loop_test(tc, test_check_source, 0,
	    AS_ARRAY_SIZE(timeout_rows));
	tcase_add_test(tc, test_check_source_secret);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (tu_run_suite(scaler_url_suite()));
}
