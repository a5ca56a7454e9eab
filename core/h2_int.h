/*
 * core/h2_int: the HTTP/2 connection (struct gw_h2) and stream (struct
 * gw_h2s) shared by core/h2.c (session, I/O, streams, requests) and
 * core/h2_sink.c (the stream as the upstream engine's sink, local answers,
 * the request body source).  Included by those two only.
 */
#ifndef GW_H2_INT_H
#define GW_H2_INT_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <nghttp2/nghttp2.h>
#include <stdint.h>

#include "core/conn_int.h"

/* Stop taking response body from the upstream above this much queued for
 * one stream (the peer's flow-control window drains it). */
#define H2_STREAM_HIWAT (128 * 1024)
/* A whole answer up to this size waits for the end of the loop pass to be
 * written with the others (core/h2_sink.c s_on_flush): one TLS record. */
#define H2_SMALL_ANSWER (16 * 1024)
/* Connection receive window (streams keep the 64 KiB default): what a
 * client may have in flight towards us, all streams together. */
#define H2_CONN_WINDOW (1 << 20)
#define H2_MAX_STREAMS 128
/* Streams a client may reset before their answer, net of answered ones. */
#define H2_RESET_BUDGET 100

enum h2_sto { STO_NONE, STO_HEADER, STO_BODY, STO_SEND, STO_DNS, STO_TUNNEL };

/* Growable flat text (core/h2.c h2_text_add); freed with free(p). */
struct h2_text {
	char *p;
	uint32_t len, cap;
};

/* The request's pseudo-headers and Host, kept in gw_h2s.pv */
enum h2_pv { H2_PV_METHOD, H2_PV_PATH, H2_PV_SCHEME, H2_PV_AUTHORITY, H2_PV_HOST, H2_PV_N };

struct gw_h2s {
	struct gw_h2 *h;
	int32_t id;
	struct gw_req *rq;         /* from the complete request head on */
	struct gw_snapshot *snap;  /* the stream's reference (rq->snap) */
	void *side;                /* its family's data in snap */
	struct evbuffer *in;       /* request body received, not yet passed on */
	struct evbuffer *trail;    /* request trailers for an h2 upstream: name NUL value NUL ... */
	int ntrail;
	struct evbuffer *out;      /* response body waiting for the peer's window */
	/* the request head as it arrives (flat text, no per-field allocation):
	 * HTTP/1 field lines, cookie crumbs, and the pseudo-headers' and
	 * Host's values (pv, each NUL-terminated, found by pv_off) */
	struct h2_text hdrs, cookie, pv;
	uint32_t pv_off[H2_PV_N];  /* +1: 0 = absent */
	size_t hdr_bytes, nhdrs;
	int hdr_err;               /* a status to answer (431) instead of the request */
	double to_at;              /* its timer's deadline (gw_mono_now), 0: none */
	enum h2_sto to_kind;       /* what the timer is for (STO_NONE: disarmed) */
	struct gw_h2s *next, *prev;
	unsigned in_done : 1;      /* END_STREAM received */
	unsigned started : 1;      /* the request went to its family */
	unsigned start_due : 1;    /* its head is complete: start it after the read */
	unsigned up_ready : 1;     /* the upstream took the head: the body may follow */
	unsigned in_paused : 1;    /* the upstream's output is full: body waits in in */
	unsigned resp_started : 1; /* a final response head was submitted */
	unsigned out_eof : 1;      /* the whole response body is in out */
	unsigned deferred : 1;     /* the data source said DEFERRED: resume it */
	unsigned up_held : 1;      /* the sink said HOLD to the engine */
	unsigned discard : 1;      /* request body bytes are dropped (answered already) */
	unsigned reading_body : 1; /* gw_req_read_body under way */
	unsigned closed : 1;       /* nghttp2 closed the stream */
	unsigned sent_end : 1;     /* END_STREAM of the response went out */
	/* a CONNECT tunnel (core/h2_tunnel.c) */
	unsigned tunnel : 1;       /* DATA carries tunnel bytes both ways */
	unsigned tun_up_shut : 1;  /* the client's END_STREAM passed on: upstream half-closed */
	unsigned tun_up_held : 1;  /* upstream reading stopped: out is full */
};

struct gw_h2 {
	struct gw_conn *c;
	nghttp2_session *ng;
	struct event ev_rd, ev_wr, ev_to, ev_free, ev_goaway, ev_kick;
	/* the streams' timers: one event at the earliest deadline (sto_at, 0:
	 * not armed); core/h2.c stream_arm says why */
	struct event ev_sto;
	double sto_at;
	struct evbuffer *in, *out;
	struct gw_h2s *streams;
	unsigned nstreams;
	int rd_big;
	unsigned wr_on : 1, busy : 1, again : 1, gone : 1, draining : 1, final_goaway : 1,
	    fatal : 1, rd_off : 1, lingering : 1;
	uint64_t requests;         /* streams that carried a request */
	uint64_t ctrl_frames;      /* PING, SETTINGS, PRIORITY, RST_STREAM, empty DATA */
	int reset_budget;          /* H2_RESET_BUDGET: see cb_frame_recv */
	enum gw_close_reason why;  /* for the close once the output drained */
};

/* h2.c */
/* Send what the session has and write it out; process what streams
 * wait for.  Safe to call from anywhere (inside the session it only marks). */
void gw_h2__io(struct gw_h2 *h);
/* Run gw_h2__io soon (from the loop; at once if the session is busy:
 * after its call) -- for sink calls that must not end the exchange. */
void gw_h2__kick(struct gw_h2 *h);
/* Arm or disarm s's timer after a change of its state. */
void gw_h2__stream_timer(struct gw_h2s *s);
/* Arm s's timer for kind in secs (STO_NONE or secs <= 0: disarm). */
void gw_h2__stream_arm(struct gw_h2s *s, enum h2_sto kind, double secs);
/* Reset stream s with code (the request ends when nghttp2 closes it). */
void gw_h2__reset(struct gw_h2s *s, uint32_t code, const char *reason);

/* h2_sink.c */
extern const struct gw_sink gw_h2_sink;
/* Answer rq locally (DEC_RESPOND / DEC_FILE). */
void gw_h2__send_local(struct gw_req *rq);
/* Answer rq with a generated error page. */
void gw_h2__respond_error(struct gw_req *rq, int status, const char *reason);
/* Move request body from s->in onwards (upstream, or the read_body buffer). */
void gw_h2__pump_body(struct gw_h2s *s);
/* nghttp2's data source for a stream's response body. */
int gw_h2__trailers(struct gw_h2s *s);
int gw_h2__req_trailer(struct gw_h2s *s, const uint8_t *name, size_t nl, const uint8_t *value, size_t vl);
ssize_t gw_h2__data_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
    uint32_t *flags, nghttp2_data_source *src, void *arg);
/* nghttp2's send_data_callback: a DATA frame from the stream's buffer. */
int gw_h2__send_data(nghttp2_session *ng, nghttp2_frame *frame, const uint8_t *framehd, size_t len,
    nghttp2_data_source *src, void *arg);
/* After the session sent: let held upstreams go on. */
void gw_h2__resume_held(struct gw_h2s *s);

/* h2_tunnel.c: CONNECT streams on a proxy's listener (RFC 9113 8.5) */
/* The family let CONNECT stream rq through (DEC_TUNNEL): connect, then tunnel. */
void gw_h2_tunnel__start(struct gw_req *rq);
/* rq (a stream's relay, core/conn_nest.c) tunnels to the local socket fd;
 * -1 out of memory (fd is the caller's). */
int gw_h2_tunnel__nest(struct gw_req *rq, int fd);
/* From run_streams (outside the session): move what waits either way,
 * pass the client's END_STREAM on as a half-close. */
void gw_h2_tunnel__run(struct gw_h2s *s);

#endif
