/*
 * check.h: the tiny unit-test harness.  A test executable calls CHECK() for
 * each assertion inside named cases (BEGIN_CASE/END_CASE); a case passes when
 * all its checks pass.  check_done() prints "RESULT: N passed, N failed"
 * (cases), which tests/run.sh sums, and returns the exit status.
 */
#ifndef GW_CHECK_H
#define GW_CHECK_H

#include <stdio.h>

static int check_cases_pass, check_cases_fail, check_case_failed;
static const char *check_case_name = "?";

#define BEGIN_CASE(name) do { check_case_name = (name); check_case_failed = 0; } while (0)
#define END_CASE() do { if (check_case_failed) check_cases_fail++; else check_cases_pass++; } while (0)

#define CHECK(cond, ...) do { \
	if (!(cond)) { \
		check_case_failed = 1; \
		fprintf(stderr, "%s:%d: case '%s': check failed: %s: ", __FILE__, __LINE__, \
		    check_case_name, #cond); \
		fprintf(stderr, __VA_ARGS__); \
		fputc('\n', stderr); \
	} \
} while (0)

static inline int check_done(void)
{
	printf("RESULT: %d passed, %d failed\n", check_cases_pass, check_cases_fail);
	return check_cases_fail ? 1 : 0;
}

#endif
