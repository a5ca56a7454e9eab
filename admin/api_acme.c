/*
 * admin/api_acme: the console's view of the ACME client (reverse/acme.h):
 * each ordered certificate's state, last error, expiry and next renewal
 * (part of GET certificates), and POST certificates/renew {"name": ...},
 * which orders one now (admin role, audited).
 */
#include <stdio.h>
#include <string.h>

#include "admin/adm_int.h"
#include "admin/api_int.h"
#include "reverse/acme.h"

#define MAX_ORDERS 256

json_t *adm_api_acme_orders(void)
{
	static struct acme_order_info info[MAX_ORDERS];   /* main thread only */
	size_t n = acme_orders_info(info, MAX_ORDERS);
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++) {
		json_t *o = json_pack("{s:s,s:s,s:s}", "names", info[i].names, "state", info[i].state,
		    "last_error", info[i].last_error);
		if (info[i].not_after > 0)
			json_object_set_new(o, "not_after", json_real((double)info[i].not_after));
		if (info[i].next > 0)
			json_object_set_new(o, "next", json_real((double)info[i].next));
		json_array_append_new(a, o);
	}
	return a;
}

enum MHD_Result adm_api_acme_renew(struct MHD_Connection *c, struct adm_req *r, const struct adm_who *who)
{
	json_t *in = r->body != NULL ? json_loadb(r->body, r->len, 0, NULL) : NULL, *out;
	const char *name = in ? json_string_value(json_object_get(in, "name")) : NULL;
	char detail[300];
	int rc;

	if (name == NULL) {
		json_decref(in);
		return adm_send_error(c, MHD_HTTP_BAD_REQUEST, "send {\"name\": \"first name of the certificate\"}");
	}
	snprintf(detail, sizeof detail, "name %.200s", name);
	if (who->role != ADM_ADMIN) {
		adm_audit(who->user, r->client, "certificate renew", "denied", detail);
		json_decref(in);
		return adm_send_error(c, MHD_HTTP_FORBIDDEN, "the admin role is required");
	}
	rc = acme_renew_now(name);
	adm_audit(who->user, r->client, "certificate renew", rc < 0 ? "failed" : "ok", detail);
	out = rc < 0 ? NULL : json_pack("{s:s}", "renewing", name);   /* name is in's */
	json_decref(in);
	if (rc < 0)
		return adm_send_error(c, MHD_HTTP_NOT_FOUND, "no ACME certificate has that first name");
	return adm_send_json(c, MHD_HTTP_OK, out);
}
