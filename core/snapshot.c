/* core/snapshot: releasing a configuration generation (see snapshot.h). */
#include "core/snapshot.h"

#include <stdlib.h>

#include "core/tls.h"

void gw_snapshot_unref(struct gw_snapshot *s)
{
	if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (int i = 0; i < s->nsides; i++)
		if (s->side_data[i] != NULL && s->sides[i]->free != NULL)
			s->sides[i]->free(s->side_data[i]);
	gw_tls_free(s->tls);
	conf_free(s->conf);
	free(s->listeners);
	free(s);
}
