/* Unit tests for reverse/servers: rise/fall counting, effective states,
 * slow-start factors, passive ejection, admin states and the registry. */
#include <string.h>

#include "check.h"
#include "reverse/servers.h"

static void test_rise_fall(void)
{
	int up = 1, okr = 0, fr = 0;

	BEGIN_CASE("rise/fall");
	/* fall = 3: two failures keep it up, the third takes it down */
	CHECK(rev_hcount_step(&up, &okr, &fr, 0, 2, 3) == 0 && up == 1, "1st fail");
	CHECK(rev_hcount_step(&up, &okr, &fr, 0, 2, 3) == 0 && up == 1, "2nd fail");
	/* a success in between resets the run */
	CHECK(rev_hcount_step(&up, &okr, &fr, 1, 2, 3) == 0 && up == 1, "ok");
	CHECK(rev_hcount_step(&up, &okr, &fr, 0, 2, 3) == 0 && up == 1, "fail");
	CHECK(rev_hcount_step(&up, &okr, &fr, 0, 2, 3) == 0 && up == 1, "fail");
	CHECK(rev_hcount_step(&up, &okr, &fr, 0, 2, 3) == 1 && up == 0, "down after 3");
	CHECK(rev_hcount_step(&up, &okr, &fr, 0, 2, 3) == 0 && up == 0, "stays down");
	/* rise = 2 */
	CHECK(rev_hcount_step(&up, &okr, &fr, 1, 2, 3) == 0 && up == 0, "1st ok");
	CHECK(rev_hcount_step(&up, &okr, &fr, 0, 2, 3) == 0 && up == 0, "fail resets");
	CHECK(rev_hcount_step(&up, &okr, &fr, 1, 2, 3) == 0 && up == 0, "ok");
	CHECK(rev_hcount_step(&up, &okr, &fr, 1, 2, 3) == 1 && up == 1, "up after 2");
	/* rise = fall = 1 flips at once; bad values count as 1 */
	CHECK(rev_hcount_step(&up, &okr, &fr, 0, 1, 0) == 1 && up == 0, "fall 0 = 1");
	CHECK(rev_hcount_step(&up, &okr, &fr, 1, 0, 1) == 1 && up == 1, "rise 0 = 1");
	END_CASE();
}

static void test_states(void)
{
	BEGIN_CASE("effective state");
	CHECK(rev_state_effective(1, REV_SRV_UP) == REV_SRV_UP, "up");
	CHECK(rev_state_effective(0, REV_SRV_UP) == REV_SRV_DOWN, "down");
	CHECK(rev_state_effective(1, REV_SRV_DRAINING) == REV_SRV_DRAINING, "draining wins");
	CHECK(rev_state_effective(0, REV_SRV_DISABLED) == REV_SRV_DISABLED, "disabled wins");
	CHECK(strcmp(rev_state_name(REV_SRV_DRAINING), "draining") == 0, "name");
	CHECK(strcmp(rev_state_name(9), "?") == 0, "bad name");
	CHECK(rev_state_parse("Disabled") == REV_SRV_DISABLED, "parse");
	CHECK(rev_state_parse("enabled") == REV_SRV_UP, "parse enabled");
	CHECK(rev_state_parse("bogus") == -1, "parse bad");
	END_CASE();
}

static void test_slow_start(void)
{
	BEGIN_CASE("slow start factor");
	CHECK(rev_slow_start_factor(0, 5000, 10) == 1.0, "since start-up: no ramp");
	CHECK(rev_slow_start_factor(1000, 5000, 0) == 1.0, "off");
	CHECK(rev_slow_start_factor(1000, 1000, 10) == 0.0, "just recovered");
	CHECK(rev_slow_start_factor(1000, 6000, 10) == 0.5, "half way");
	CHECK(rev_slow_start_factor(1000, 11000, 10) == 1.0, "done");
	CHECK(rev_slow_start_factor(1000, 99000, 10) == 1.0, "long after");
	END_CASE();
}

static void test_passive(void)
{
	struct rev_srv *s = rev_srv_get("app", "10.0.0.1:80");
	int64_t now = 100000;

	BEGIN_CASE("passive ejection");
	CHECK(s != NULL, "get");
	CHECK(rev_srv_usable(s, now), "usable at first");
	CHECK(rev_srv_failed(s, 3, 10, now) == 0, "1");
	CHECK(rev_srv_failed(s, 3, 10, now) == 0, "2");
	rev_srv_succeeded(s);
	CHECK(rev_srv_failed(s, 3, 10, now) == 0, "1 after success");
	CHECK(rev_srv_failed(s, 3, 10, now) == 0, "2 after success");
	CHECK(rev_srv_failed(s, 3, 10, now) == 1, "3: ejected (reported once)");
	CHECK(!rev_srv_usable(s, now + 9999), "ejected during cooldown");
	CHECK(rev_srv_failed(s, 3, 10, now + 1) == 0, "no second report while ejected");
	CHECK(rev_srv_usable(s, now + 10000), "usable after cooldown");
	/* slow start counts from the end of the ejection */
	CHECK(rev_srv_weight_factor(s, 10, now + 15000) == 0.5, "ramp after ejection: %g",
	    rev_srv_weight_factor(s, 10, now + 15000));
	CHECK(atomic_load(&s->ejections) == 1, "ejection counted");
	CHECK(rev_srv_back(s, now + 9999) == 0, "not back during the ejection");
	CHECK(rev_srv_back(s, now + 10000) == 1, "back reported once");
	CHECK(rev_srv_back(s, now + 10001) == 0, "... only once");
	/* failures further apart than fail_timeout do not add up */
	now += 100000;
	CHECK(rev_srv_failed(s, 2, 1, now) == 0, "window 1: 1");
	CHECK(rev_srv_failed(s, 2, 1, now + 1500) == 0, "window 2: 1");
	CHECK(rev_srv_failed(s, 2, 1, now + 2000) == 1, "window 2: 2 -> ejected for 1 s");
	CHECK(!rev_srv_usable(s, now + 2999) && rev_srv_usable(s, now + 3000), "1 s");
	CHECK(rev_srv_failed(s, 0, 10, now + 5000) == 0 && rev_srv_failed(s, 0, 10, now + 5000) == 0 &&
	    rev_srv_usable(s, now + 5000), "max_fails 0: never");
	END_CASE();
	rev_srv_put(s);
}

static void test_registry_admin(void)
{
	struct rev_srv *a = rev_srv_get("app", "10.0.0.2:80");
	struct rev_srv *b = rev_srv_get("app", "10.0.0.2:80");
	struct rev_srv *c = rev_srv_get("other", "10.0.0.2:80");
	int64_t now = rev_now_ms();

	BEGIN_CASE("registry and admin states");
	CHECK(a != NULL && a == b, "same upstream+address: same state (kept across reloads)");
	CHECK(c != NULL && c != a, "other upstream: other state");
	CHECK(rev_srv_set_admin(a, REV_SRV_DRAINING) == 0, "drain");
	CHECK(atomic_load(&b->state) == REV_SRV_DRAINING && !rev_srv_usable(b, now),
	    "draining: no new requests");
	CHECK(rev_srv_set_admin(a, REV_SRV_DOWN) == -1, "down is not an admin state");
	/* health failing while draining: effective state stays draining */
	for (int i = 0; i < 3; i++)
		rev_srv_check_result(a, 0, -1, 1.0, "connect: refused", 2, 3);
	CHECK(atomic_load(&a->health_up) == 0 && atomic_load(&a->state) == REV_SRV_DRAINING,
	    "health down under drain");
	CHECK(rev_srv_set_admin(a, REV_SRV_UP) == 0 && atomic_load(&a->state) == REV_SRV_DOWN,
	    "enable: down by health");
	rev_srv_check_result(a, 1, 200, 1.0, NULL, 2, 3);
	CHECK(atomic_load(&a->state) == REV_SRV_DOWN, "one success < rise");
	rev_srv_check_result(a, 1, 200, 1.0, NULL, 2, 3);
	CHECK(atomic_load(&a->state) == REV_SRV_UP && rev_srv_usable(a, rev_now_ms()), "up");
	CHECK(a->checks_ok == 2 && a->checks_failed == 3 && a->last_status == 200, "counters");
	CHECK(rev_srv_weight_factor(a, 10, rev_now_ms()) < 0.1, "ramp starts after recovery");
	CHECK(rev_srv_set_admin(a, REV_SRV_DISABLED) == 0 && !rev_srv_usable(a, rev_now_ms()),
	    "disabled");
	rev_srv_put(b);
	/* still referenced by a: the state survives */
	b = rev_srv_get("app", "10.0.0.2:80");
	CHECK(b == a && atomic_load(&b->state) == REV_SRV_DISABLED, "kept while referenced");
	END_CASE();
	rev_srv_put(a);
	rev_srv_put(b);
	rev_srv_put(c);
}

int main(void)
{
	test_rise_fall();
	test_states();
	test_slow_start();
	test_passive();
	test_registry_admin();
	return check_done();
}
