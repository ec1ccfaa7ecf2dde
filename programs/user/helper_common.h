/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the lab's user-space helpers share: the stop flag set by signals, JSON string output, the
 * one error line they print before exiting 2, and a monotonic clock in seconds. Included by
 * every helper in programs/user; lab/programs/user.ts hashes it into their build.
 */
#ifndef XCL_HELPER_COMMON_H
#define XCL_HELPER_COMMON_H

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop_requested;

static inline void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* Writes s as a JSON string literal (quotes included). */
static inline void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static inline void emit_error(const char *stage, int err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	printf("{\"event\":\"error\",\"stage\":");
	json_string(stdout, stage);
	printf(",\"errno\":%d,\"message\":", err);
	json_string(stdout, msg);
	printf("}\n");
	fflush(stdout);
}

static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* SIGINT, SIGTERM and SIGHUP set stop_requested; the main loop polls it. */
static inline void install_stop_handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

#endif
