/*
 * tls.h - the listener's certificate chain and private key (GnuTLS), loaded from
 * PEM files and checked the way an administrator needs: a file that cannot be read,
 * is not PEM, holds a key that does not match the certificate, or a certificate that
 * has expired or is not valid yet is refused with a sentence saying so, never a crash.
 *
 * A loaded set is immutable and reference counted: the listener hands it to GnuTLS
 * for each handshake (the certificate callback), and a reload brings a new set
 * while connections already open keep theirs. Thread-safe.
 */
#ifndef HIBUS_TLS_H
#define HIBUS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <gnutls/abstract.h>

#include "hibus/error.h"

/* Only TLS 1.3 and 1.2 with AEAD ciphers and ephemeral key exchange. */
#define TLS_PRIORITIES                                                                             \
    "SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:"         \
    "+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:%SERVER_PRECEDENCE"

struct tls_creds;

/* Loads and checks cert_path (the server certificate first, then its chain) and
 * key_path (unencrypted). On failure *out is NULL and why says what is wrong and how
 * to fix it; HIBUS_E_IO for a file that cannot be read, HIBUS_E_CONFIG otherwise. */
enum hibus_err tls_creds_load(const char *cert_path, const char *key_path, struct tls_creds **out,
                              char *why, size_t whylen);
struct tls_creds *tls_creds_ref(struct tls_creds *c);
/* Drops a reference; the last one frees the set. NULL-safe. */
void tls_creds_unref(struct tls_creds *c);

/* When the server certificate stops being valid. */
time_t tls_creds_expires(const struct tls_creds *c);
/* The server certificate's subject, e.g. "CN=hibus.example.org". */
const char *tls_creds_subject(const struct tls_creds *c);
/* What GnuTLS's certificate callback returns: the chain and the key, owned by c. */
void tls_creds_get(const struct tls_creds *c, gnutls_pcert_st **pcert, unsigned *n,
                   gnutls_privkey_t *key);

/* The client certificate of a TLS session: its SHA-256 and subject, and whether it
 * chains to the server's trusted CAs (listen.tls.client_ca) and is valid now. False
 * when the client sent none. */
bool tls_peer_certificate(gnutls_session_t s, unsigned char sha256[32], char *subject,
                          size_t subject_len, bool *verified);

/* The contents of a PEM file (for libmicrohttpd's trust option), or NULL with why set. */
char *tls_read_pem(const char *path, char *why, size_t whylen);

/* Whether path is a readable PEM file of at least one CA certificate; why says what
 * is wrong when not. */
bool tls_ca_file_check(const char *path, char *why, size_t whylen);

#endif
