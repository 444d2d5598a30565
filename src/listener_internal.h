/*
 * listener_internal.h - what the admin listener (src/admin.c) shares with the main
 * one (src/listener.c). Not an API: only those two include it.
 */
#ifndef HIBUS_LISTENER_INTERNAL_H
#define HIBUS_LISTENER_INTERNAL_H

#include <microhttpd.h>

/* Queues hibus's own answer r. Every answer hibus makes goes through here:
 * src/listener.c takes any other call of MHD_queue_response for one of
 * libmicrohttpd's own refusals and sends it as JSON instead (see "libmicrohttpd's
 * own answers" there). */
enum MHD_Result listener_queue_ours(struct MHD_Connection *c, unsigned status,
                                    struct MHD_Response *r);

#endif
