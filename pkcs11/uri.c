/*
 * RFC 7512 "pkcs11:" URIs: building a key's, and matching tokens and keys
 * with p11-kit's parser.
 *
 * Matching follows the RFC: a path attribute that the URI leaves out
 * matches anything.  Attributes we cannot judge are refused rather than
 * ignored, since ignoring one would make a URI select more than its writer
 * meant: unknown path attributes, library-* (module info) and
 * slot-description / slot-manufacturer.  slot-id is compared with the slot.
 * Query attributes (module-name, module-path, pin-source, pin-value) are
 * not looked at: the caller picks the module, and PINs never come from a URI.
 */
#include <stdlib.h>
#include <string.h>

#include <p11-kit/uri.h>

#include "pkcs11/internal.h"

static int
pct_put(struct cx_buf *b, const uint8_t *p, size_t n, int all)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i;
	int r = 0;

	for (i = 0; i < n && r == 0; i++) {
		uint8_t c = p[i];

		/* RFC 3986 unreserved characters stand for themselves; ids are all escaped */
		if (!all &&
		    ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		        c == '-' || c == '.' || c == '_' || c == '~'))
			r = cx_buf_put_u8(b, c);
		else if ((r = cx_buf_put_u8(b, '%')) == 0 &&
		    (r = cx_buf_put_u8(b, hex[c >> 4])) == 0)
			r = cx_buf_put_u8(b, hex[c & 15]);
	}
	return r;
}

static int
attr_put(struct cx_buf *b, const char *name, const uint8_t *p, size_t n, int all)
{
	int r;

	if ((r = cx_buf_put_str(b, name)) != 0 || (r = cx_buf_put_u8(b, '=')) != 0 ||
	    (r = pct_put(b, p, n, all)) != 0)
		return r;
	return cx_buf_put_u8(b, ';');
}

int
cx_p11_uri_build(
    const struct cx_p11_token_info *ti, const struct cx_p11_key *k, char **out, struct cx_err *e)
{
	struct cx_buf b;
	int r;

	*out = NULL;
	cx_buf_init(&b, 16 * 1024);
	if ((r = cx_buf_put_str(&b, "pkcs11:")) != 0 ||
	    (r = attr_put(&b, "model", (const uint8_t *)ti->model, strlen(ti->model), 0)) != 0 ||
	    (r = attr_put(&b, "manufacturer", (const uint8_t *)ti->manufacturer,
	         strlen(ti->manufacturer), 0)) != 0 ||
	    (r = attr_put(&b, "serial", (const uint8_t *)ti->serial, strlen(ti->serial), 0)) != 0 ||
	    (r = attr_put(&b, "token", (const uint8_t *)ti->label, strlen(ti->label), 0)) != 0 ||
	    (k->ckaidlen > 0 && (r = attr_put(&b, "id", k->ckaid, k->ckaidlen, 1)) != 0) ||
	    (r = attr_put(&b, "object", (const uint8_t *)k->label, strlen(k->label), 0)) != 0 ||
	    (r = cx_buf_put_str(&b, "type=private")) != 0 ||
	    (*out = cx_buf_steal_str(&b, NULL)) == NULL) {
		cx_buf_free(&b);
		return cx_err_set(e, r != 0 ? r : CX_ENOMEM, "cannot build key URI");
	}
	cx_buf_free(&b);
	return 0;
}

/* Is the path part of u, formatted for these parts, empty? */
static int
no_attrs(P11KitUri *u, P11KitUriType which)
{
	char *s = NULL, *q;
	int empty;

	if (p11_kit_uri_format(u, which, &s) != P11_KIT_URI_OK || s == NULL) {
		free(s);
		return -1;
	}
	if ((q = strchr(s, '?')) != NULL)
		*q = '\0';
	empty = strcmp(s, P11_KIT_URI_SCHEME ":") == 0;
	free(s);
	return empty;
}

static int
parse(const char *uri, const struct cx_p11_token_info *ti, P11KitUri **out, int *match,
    struct cx_err *e)
{
	CK_TOKEN_INFO ck;
	CK_SLOT_ID slot;
	P11KitUri *u;
	int r;

	*out = NULL;
	*match = 0;
	if (uri == NULL)
		return cx_err_set(e, CX_EINVAL, "no PKCS#11 URI");
	if ((u = p11_kit_uri_new()) == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	if ((r = p11_kit_uri_parse(uri, P11_KIT_URI_FOR_ANY, u)) != P11_KIT_URI_OK) {
		p11_kit_uri_free(u);
		return cx_err_set(
		    e, CX_EPARSE, "PKCS#11 URI %.200s: %s", uri, p11_kit_uri_message(r));
	}
	if (p11_kit_uri_any_unrecognized(u)) {
		p11_kit_uri_free(u);
		return cx_err_set(e, CX_EUNSUPPORTED, "PKCS#11 URI %.200s: unknown attribute", uri);
	}
	slot = p11_kit_uri_get_slot_id(u);
	p11_kit_uri_set_slot_id(u, (CK_SLOT_ID)-1);
	if (no_attrs(u, P11_KIT_URI_FOR_MODULE_WITH_VERSION) != 1 ||
	    no_attrs(u, P11_KIT_URI_FOR_SLOT) != 1) {
		p11_kit_uri_free(u);
		return cx_err_set(e, CX_EUNSUPPORTED,
		    "PKCS#11 URI %.200s: library-* and slot-description/slot-manufacturer are not supported",
		    uri);
	}
	cx_p11_info_to_ck(ti, &ck);
	*match = (slot == (CK_SLOT_ID)-1 || slot == ti->slot) &&
	    p11_kit_uri_match_token_info(u, &ck) == 1;
	*out = u;
	return 0;
}

int
cx_p11_uri_match_token(const char *uri, const struct cx_p11_token_info *ti, struct cx_err *e)
{
	P11KitUri *u;
	int r, match;

	if ((r = parse(uri, ti, &u, &match, e)) != 0)
		return r;
	p11_kit_uri_free(u);
	return match;
}

int
cx_p11_uri_match_key(const char *uri, const struct cx_p11_token_info *ti,
    const struct cx_p11_key *k, struct cx_err *e)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE attrs[] = {
	    {CKA_CLASS, &cls, sizeof(cls)},
	    {CKA_LABEL, k->label, k->label != NULL ? strlen(k->label) : 0},
	    {CKA_ID, k->ckaid, k->ckaidlen},
	};
	P11KitUri *u;
	int r, match;

	if ((r = parse(uri, ti, &u, &match, e)) != 0)
		return r;
	/* object, id and type=private: a URI naming the public key or a certificate does not match */
	if (match)
		match = p11_kit_uri_match_attributes(u, attrs, 3) == 1;
	p11_kit_uri_free(u);
	return match;
}
