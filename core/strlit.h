/*
 * core/strlit.h: a string literal and its length as two arguments, counted
 * by the compiler (h2o's H2O_STRLIT): evbuffer_add(b, GW_STRLIT("\r\n")).
 * A hand-counted length is a classic off-by-one header bug.  Only for
 * literals: on a pointer, sizeof gives the pointer's size.
 */
#ifndef GW_STRLIT_H
#define GW_STRLIT_H

#define GW_STRLIT(s) (s), sizeof(s) - 1

#endif
