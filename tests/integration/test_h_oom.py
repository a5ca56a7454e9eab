"""Out of memory inside a request: the request fails with 503, the process
lives (no abort() in the data path).  A malloc shim (LD_PRELOAD, built here
with cc) fails every allocation of one exact size while a flag file exists;
the size is that of the arena block forward's on_request asks for to
normalise a long URL (3 * target length + FWD_URL_NORM_EXTRA, rounded as
core/arena.c rounds, plus its block header), so that one request runs out
of memory mid-decision.  Not under ASan (its allocator must come first)."""
import os
import subprocess

import pytest

import gh

SHIM = r"""
#define _GNU_SOURCE
#include <stdlib.h>
#include <unistd.h>
extern void *__libc_malloc(size_t);
static size_t fail_size;
static const char *flag;
static int ready;
void *malloc(size_t n)
{
	if (!ready) {
		const char *s = getenv("GW_TEST_FAIL_SIZE");
		fail_size = s != NULL ? strtoul(s, NULL, 10) : 0;
		flag = getenv("GW_TEST_FAIL_FLAG");
		ready = 1;
	}
	if (n == fail_size && flag != NULL && access(flag, F_OK) == 0)
		return NULL;
	return __libc_malloc(n);
}
"""

FWD_URL_NORM_EXTRA = 64      # forward/policy.h
ARENA_HDR = 32               # sizeof(struct gw_arena_blk), core/arena.h


def build_shim(d):
    src = os.path.join(d, "failmalloc.c")
    so = os.path.join(d, "failmalloc.so")
    with open(src, "w") as f:
        f.write(SHIM)
    r = subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", so, src], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot build the malloc shim: %s" % r.stderr.decode(errors="replace"))
    return so


@pytest.mark.skipif(os.environ.get("GW_SANITIZED") == "1", reason="LD_PRELOAD malloc under ASan")
def test_request_out_of_memory_is_503_and_process_lives(origin, ports):
    g = gh.Gatehouse("""
forward: {
  listeners = ( { address = "127.0.0.1:%d"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ];
};
""" % ports[0])
    so = build_shim(g.dir)
    flag = os.path.join(g.dir, "fail-now")
    url = "http://127.0.0.1:%d/echo?%s" % (origin.port, "q" * 2999)
    cap = 3 * len(url) + FWD_URL_NORM_EXTRA
    size = ARENA_HDR + ((cap + 15) & ~15)
    saved = dict(os.environ)
    os.environ.update(LD_PRELOAD=so, GW_TEST_FAIL_SIZE=str(size), GW_TEST_FAIL_FLAG=flag)
    try:
        g.start([ports[0]])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    proxy = "http://127.0.0.1:%d" % ports[0]
    try:
        assert gh.curl_status("-x", proxy, url) == 200          # shim loaded, nothing fails yet
        open(flag, "w").close()
        assert gh.curl_status("-x", proxy, url) == 503
        # a request that needs no block of that size is unaffected meanwhile
        assert gh.curl_status("-x", proxy, "http://127.0.0.1:%d/size/10" % origin.port) == 200
        os.unlink(flag)
        assert gh.curl_status("-x", proxy, url) == 200          # and the process lived
        assert g.proc.poll() is None
        lines = [l for l in g.access_lines() if " 503 " in l]
        assert len(lines) == 1 and "out of memory" in lines[0], lines
        assert "out of memory" in g.stderr()
    finally:
        g.check_clean()
