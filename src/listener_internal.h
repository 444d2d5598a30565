/*
 * listener_internal.h - what the admin listener (src/admin.c) shares with the main
 * one (src/listener.c). Not an API: only those two include it.
 */
#ifndef HIBUS_LISTENER_INTERNAL_H
#define HIBUS_LISTENER_INTERNAL_H

#include <gnutls/abstract.h>
#include <microhttpd.h>

/* Queues hibus's own answer r. Every answer hibus makes goes through here:
 * src/listener.c takes any other call of MHD_queue_response for one of
 * libmicrohttpd's own refusals and sends it as JSON instead (see "libmicrohttpd's
 * own answers" there). */
enum MHD_Result listener_queue_ours(struct MHD_Connection *c, unsigned status,
                                    struct MHD_Response *r);

/* GnuTLS asks for the server certificate of a handshake: listen.tls's, of the
 * configuration current now (a reload brings a new one to new connections). The
 * admin listener serves the same. Valid once listener_start has served HTTPS. */
int listener_tls_cert(gnutls_session_t session, const gnutls_datum_t *req_ca, int nreqs,
                      const gnutls_pk_algorithm_t *algos, int nalgos, gnutls_pcert_st **pcert,
                      unsigned int *n, gnutls_privkey_t *key);

#endif
