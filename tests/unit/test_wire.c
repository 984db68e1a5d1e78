/* The opam-format reader, the canonical form, typed resources and the writer. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conex/resource.h"
#include "conex/targets_fast.h"
#include "conex/wire.h"
#include "tests/unit/testutil.h"

static struct cx_wire *
parse_ok(struct cx_arena *a, const char *text)
{
	struct cx_wire *w = NULL;
	struct cx_err e = {0};
	int r = cx_wire_parse(a, "t", (const uint8_t *)text, strlen(text), &w, &e);

	ck_assert_msg(r == 0, "parse of <%s> failed: %s", text, e.msg);
	return w;
}

static const char *
parse_err(const char *text)
{
	static struct cx_err e;
	struct cx_arena a;
	struct cx_wire *w = NULL;
	int r;

	memset(&e, 0, sizeof(e));
	cx_arena_init(&a, 0);
	r = cx_wire_parse(&a, "t", (const uint8_t *)text, strlen(text), &w, &e);
	cx_arena_free(&a);
	ck_assert_msg(r != 0, "parse of <%s> should fail", text);
	return e.msg;
}

static char *
canon(const struct cx_wire *w)
{
	struct cx_buf b;

	cx_buf_init(&b, 0);
	ck_assert_int_eq(cx_wire_canon(w, &b), 0);
	return cx_buf_steal_str(&b, NULL);
}

static void
check_canon(const char *text, const char *want)
{
	struct cx_arena a;
	char *got;

	cx_arena_init(&a, 0);
	got = canon(parse_ok(&a, text));
	ck_assert_msg(strcmp(got, want) == 0, "<%s>: canon %s, want %s", text, got, want);
	free(got);
	cx_arena_free(&a);
}

START_TEST(test_decode_rules)
{
	check_canon("a: 0x9A5", "{a:0x9A5}");
	check_canon("a: 0x1_f", "{a:0x1F}");
	check_canon("a: 0xFFFFFFFFFFFFFFFF", "{a:0xFFFFFFFFFFFFFFFF}");
	check_canon("a: 0X1", "{a:0X1}"); /* capital X: an identifier */
	check_canon("a: emptymap", "{a:{}}");
	check_canon("a: \"  x y \\t\"", "{a:3'x y}");
	check_canon("a: -12", "{a:-12}");
	check_canon("a: 1_000", "{a:1000}");
	check_canon("a: []", "{a:[]}");
	check_canon("a: [[k v] [j 0x1]]", "{a:{j:0x1;k:v}}");
	check_canon("a: [[k v] [k w]]", "{a:{k:w}}"); /* later binding wins */
	check_canon("a: [[k v] [j]]", "{a:[[k;v];[j]]}");
	check_canon("a: [[k v w]]", "{a:[[k;v;w]]}");
	check_canon("a: [[\"k\" v]]", "{a:[[1'k;v]]}");
	check_canon("a: (2 [x y])", "{a:(2[x;y])}");
	check_canon("a: (x & y)", "{a:(x&&y)}");
	check_canon("a: x & y | z", "{a:((x&&y)||z)}");
	check_canon("a: x | y & z", "{a:(x||(y&&z))}");
	check_canon("a: (x | y) & z", "{a:((x||y)&&z)}");
	check_canon("a: x & y & z", "{a:((x&&y)&&z)}");
	check_canon("b: 1 a: 2 b: 3", "{a:2;b:3}");
	check_canon("a: \"\"\"\\\n   rsa=x\ny\"\"\"", "{a:7'rsa=x\ny}");
	check_canon("a: \"\\065\\x42\\ \\\"\\\\\"", "{a:5'AB \"\\}");
	check_canon("a: \"x\\\n    y\"", "{a:2'xy}");
	check_canon("# c\na: (* nested (* c *) *) x", "{a:x}");
	check_canon("a: \"\"\"x\"y\"\"\"", "{a:3'x\"y}");
	check_canon("a: b:c d: e", "{a:b:c;d:e}"); /* IDENT may hold one :id */
	check_canon("", "{}");
	check_canon("a: \r\n x", "{a:x}");
}
END_TEST

START_TEST(test_reject)
{
	const char *m;

	m = parse_err("a: \"m\\q3\"");
	ck_assert_msg(strstr(m, "t:1:6: invalid escape") != NULL, "%s", m);
	m = parse_err("a: 99999999999999999999");
	ck_assert_msg(strstr(m, "integer") != NULL, "%s", m);
	m = parse_err("a: 0x10000000000000000");
	ck_assert_msg(strstr(m, "unsigned integer") != NULL, "%s", m);
	m = parse_err("a: 0x");
	m = parse_err("a: 0xg");
	m = parse_err("a: true");
	ck_assert_msg(strstr(m, "boolean") != NULL, "%s", m);
	m = parse_err("a: [x");
	ck_assert_msg(strstr(m, "unclosed") != NULL, "%s", m);
	m = parse_err("a: \"abc");
	ck_assert_msg(strstr(m, "t:1:4: unterminated string") != NULL, "%s", m);
	m = parse_err("sec \"x\" { a: b }");
	ck_assert_msg(strstr(m, "section") != NULL, "%s", m);
	m = parse_err("a: x {b}");
	m = parse_err("a: x = y");
	m = parse_err("a: (x y z)");
	ck_assert_msg(strstr(m, "group") != NULL, "%s", m);
	m = parse_err("a: ((x & y))");
	m = parse_err("a: (* open");
	m = parse_err("a: \"\\256\"");
	m = parse_err("a: \"\\xZZ\"");
	m = parse_err("a: x\rb");
	m = parse_err("a: _");
	m = parse_err("\n\n  a b");
	ck_assert_msg(strstr(m, "t:3:5:") != NULL, "%s", m);
	m = parse_err("a: @");
	ck_assert_msg(strstr(m, "unexpected character") != NULL, "%s", m);
}
END_TEST

START_TEST(test_depth)
{
	char buf[4096];
	int i, n = 0;

	n += snprintf(buf + n, sizeof(buf) - n, "a: ");
	for (i = 0; i < 200; i++)
		buf[n++] = '[';
	for (i = 0; i < 200; i++)
		buf[n++] = ']';
	buf[n] = 0;
	ck_assert(strstr(parse_err(buf), "deep") != NULL);
}
END_TEST

static void
check_tbs_sha(const char *rel, enum cx_rtype t, const char *want_hex, size_t want_len)
{
	const char *sh = cx_test_shared();
	char path[4096], hex[65];
	struct cx_resource *r;
	struct cx_arena a;
	struct cx_buf c, tbs;
	struct cx_err e = {0};
	uint8_t *data, h[32];
	size_t len;

	if (sh == NULL)
		return;
	snprintf(path, sizeof(path), "%s/vectors/testrepo/%s", sh, rel);
	ck_assert((data = cx_test_read(path, &len)) != NULL);
	cx_arena_init(&a, 0);
	ck_assert_msg(cx_resource_parse(&a, rel, data, len, t, &r, NULL, &e) == 0, "%s", e.msg);
	cx_buf_init(&c, 0);
	cx_buf_init(&tbs, 0);
	ck_assert_int_eq(cx_resource_canon(r, &c), 0);
	ck_assert_int_ge(r->nsigs, 1);
	ck_assert_int_eq(
	    cx_tbs(c.d, c.len, r->sigs[0].created, r->sigs[0].id, r->sigs[0].alg, &tbs), 0);
	cx_sha256(tbs.d, tbs.len, h);
	cx_hex_encode(h, 32, hex);
	ck_assert_uint_eq(tbs.len, want_len);
	ck_assert_str_eq(hex, want_hex);
	cx_buf_free(&c);
	cx_buf_free(&tbs);
	cx_arena_free(&a);
	free(data);
}

START_TEST(test_testrepo_tbs)
{
	if (cx_test_shared() == NULL) {
		fprintf(stderr, "SKIP: ../shared absent\n");
		return;
	}
	check_tbs_sha("root", CX_R_ROOT,
	    "8cce6bb8c84332e4221d31536d8d8463fedf8dd4811d01a4c950e30b58db8542", 1533);
	check_tbs_sha("keys/m1", CX_R_TARGETS,
	    "05a09a3e0ec037ebf98c7f897367cdbc2dc33157cc7367275cc1539569ac82a6", 1309);
}
END_TEST

/* parse -> write -> parse gives the same typed record, and the same canonical bytes */
static void
roundtrip(const char *name, const uint8_t *data, size_t len, enum cx_rtype t)
{
	struct cx_arena a;
	struct cx_resource *r1, *r2;
	struct cx_buf out, c1, c2;
	struct cx_wire *w1, *w2;
	struct cx_err e = {0};

	cx_arena_init(&a, 0);
	cx_buf_init(&out, 0);
	cx_buf_init(&c1, 0);
	cx_buf_init(&c2, 0);
	ck_assert_msg(cx_resource_parse(&a, name, data, len, t, &r1, NULL, &e) == 0, "%s", e.msg);
	ck_assert_msg(cx_resource_write(r1, &out, &e) == 0, "%s", e.msg);
	ck_assert_msg(cx_resource_parse(&a, name, out.d, out.len, t, &r2, NULL, &e) == 0, "%s: %s",
	    e.msg, out.d);
	w1 = cx_resource_wire(&a, r1);
	w2 = cx_resource_wire(&a, r2);
	ck_assert(cx_wire_equal(w1, w2));
	ck_assert_int_eq(cx_resource_canon(r1, &c1), 0);
	ck_assert_int_eq(cx_resource_canon(r2, &c2), 0);
	ck_assert_uint_eq(c1.len, c2.len);
	ck_assert(memcmp(c1.d, c2.d, c1.len) == 0);
	/* the direct serialiser writes exactly the canonical form of the normalised map */
	cx_buf_reset(&c2);
	ck_assert_int_eq(cx_wire_canon(cx_resource_signed_wire(&a, r1), &c2), 0);
	ck_assert_uint_eq(c1.len, c2.len);
	ck_assert(memcmp(c1.d, c2.d, c1.len) == 0);
	cx_buf_free(&out);
	cx_buf_free(&c1);
	cx_buf_free(&c2);
	cx_arena_free(&a);
}

START_TEST(test_testrepo_roundtrip)
{
	static const struct {
		const char *rel;
		enum cx_rtype t;
	} f[] = {{"root", CX_R_ROOT}, {"keys/m1", CX_R_TARGETS}, {"keys/m2", CX_R_TARGETS},
	    {"keys/m3", CX_R_TARGETS}, {"snap", CX_R_SNAPSHOT}, {"timestamp", CX_R_TIMESTAMP}};
	const char *sh = cx_test_shared();
	char path[4096];

	if (sh == NULL) {
		fprintf(stderr, "SKIP: ../shared absent\n");
		return;
	}
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		size_t len;
		uint8_t *d;
		snprintf(path, sizeof(path), "%s/vectors/testrepo/%s", sh, f[i].rel);
		ck_assert((d = cx_test_read(path, &len)) != NULL);
		roundtrip(f[i].rel, d, len, f[i].t);
		free(d);
	}
}
END_TEST

START_TEST(test_expr_roundtrip)
{
	/* (a | b) & c must survive a write/read cycle (upstream loses it, §12.16) */
	const char *doc =
	    "signed: [[version 0] [typ targets] [name \"x\"] [created \"c\"] [counter 0x1]"
	    " [epoch 0x0] [valid ((a | b) & c)] [keys []]"
	    " [delegations [[[paths [\"packages/foo\"]] [valid (2 [[m1 \"sha256=00\" 0x0] [m2 "
	    "\"sha256=11\" 0x1] z])]]]]"
	    " [targets []]]";

	roundtrip("x", (const uint8_t *)doc, strlen(doc), CX_R_TARGETS);
}
END_TEST

START_TEST(test_resource_errors)
{
	static const char *bad[] = {
	    "signed: [[version 1] [typ targets] [name \"x\"] [created \"c\"] [counter 0x1] [epoch "
	    "0x0] [valid a] [delegations []] [targets []]]",
	    "signed: [[version 0] [typ targets] [name \"x\"] [created \"c\"] [counter 0x1] [epoch "
	    "0x0] [valid a] [delegations []] [targets []] [extra 1]]",
	    "signed: [[version 0] [typ targets] [name \"x\"] [created \"c\"] [counter 0x1] [epoch "
	    "0x0] [valid a] [delegations []]]",
	    "signed: [[version 0] [typ targets] [name \"x\"] [created \"c\"] [counter 0x1] [epoch "
	    "0x0] [valid a] [delegations []] [targets [[[filename \"a/../b\"] [size 0x1] [digest "
	    "[]]]]]]",
	    "signed: [[version 0] [typ targets] [name \"x\"] [created \"c\"] [counter 0x1] [epoch "
	    "0x0] [valid (3 [a b])] [delegations []] [targets []]]",
	    "signed: [[version 0] [typ targets] [name \"x\"] [created \"c\"] [counter 0x1] [epoch "
	    "0x0] [valid (-1 [])] [delegations []] [targets []]]",
	    "signed: [[version 0] [typ snapshot] [name \"x\"] [created \"c\"] [counter 0x1] [epoch "
	    "0x0] [valid a] [delegations []] [targets []]]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cx_arena a;
		struct cx_resource *r;
		struct cx_err e = {0};
		cx_arena_init(&a, 0);
		ck_assert_msg(cx_resource_parse(&a, "x", (const uint8_t *)bad[i], strlen(bad[i]),
		                  CX_R_TARGETS, &r, NULL, &e) != 0,
		    "case %zu accepted", i);
		ck_assert_msg(strncmp(e.msg, "x", 1) == 0,
		    "case %zu: message does not name the file: %s", i, e.msg);
		cx_arena_free(&a);
	}
}
END_TEST

START_TEST(test_time)
{
	int64_t t;

	ck_assert_int_eq(cx_time_parse("1970-01-01T00:00:01Z", &t), 0);
	ck_assert_int_eq(t, 1);
	ck_assert_int_eq(cx_time_parse("2025-10-02T08:39:06Z", &t), 0);
	ck_assert_int_eq(t, 1759394346);
	ck_assert_int_eq(cx_time_parse("2018-07-27T11:26:24-00:00", &t), 0);
	ck_assert_int_eq(cx_time_parse("2025-10-02T10:39:06+02:00", &t), 0);
	ck_assert_int_eq(t, 1759394346);
	ck_assert_int_ne(cx_time_parse("2025-02-30T00:00:00Z", &t), 0);
	ck_assert_int_ne(cx_time_parse("2025-10-02T08:39:06.5Z", &t), 0);
	ck_assert_int_ne(cx_time_parse("2025-10-02 08:39:06Z", &t), 0);
	ck_assert_int_ne(cx_time_parse("1970-01-01T00:00:00Z", &t), 0);
}
END_TEST

/* The targets file as our writer lays it out: the fast path reads its targets list. */
static const char fast_doc[] =
    "signed: [\n"
    "  [counter 0x1]\n"
    "  [created \"2026-11-25T10:42:57Z\"]\n"
    "  [delegations []]\n"
    "  [epoch 0x0]\n"
    "  [keys [\n"
    "    [\n"
    "      m1\n"
    "      \"2025-01-01T00:00:00Z\"\n"
    "      \"ed25519=8/B4ylAHtiq/fU/XRGcKbWHLrxa2fWud6NUFfXzgV1s=\"\n"
    "    ]\n"
    "  ]]\n"
    "  [name \"m1\"]\n"
    "  [targets [\n"
    "    [\n"
    "      [digest [\n"
    "        \"sha256=72ea300f70ce01445fa0c4a1c256a3bede7ad54c82b7e033fa8ad1ed5684c9e9\"\n"
    "      ]]\n"
    "      [filename \"packages/foo/foo.1.0/opam\"]\n"
    "      [size 0x40D]\n"
    "    ]\n"
    "    [\n"
    "      [digest [\n"
    "        \"sha256=7e68f41a52476745a535ca0be14f7509417aacb3cb414058b4f1b09f14e79bd3\"\n"
    "        \"sha256=7e68f41a52476745a535ca0be14f7509417aacb3cb414058b4f1b09f14e79bd3\"\n"
    "      ]]\n"
    "      [filename \"/packages/foo/foo.1.1/files/x y.patch\"]\n"
    "      [size 0x3F7]\n"
    "    ]\n"
    "  ]]\n"
    "  [typ targets]\n"
    "  [valid m1]\n"
    "  [version 0]\n"
    "]\n"
    "signatures: [\n"
    "  [\n"
    "    m1\n"
    "    \"2026-11-25T10:42:57Z\"\n"
    "    \"ed25519=yMVa9v+DkWv1UOIZEX/Qj+3tPi8+Bab96pPxxWpBge8+QxJysEvccdUTlLPO8tS8QRQhRXY0MkDMU9QFPB14AQ==\"\n"
    "  ]\n"
    "]\n";

/* Delegations as our writer lays them out (the author model's maintainer file). */
static const char fast_dels[] =
    "signed: [\n"
    "  [counter 0x2]\n"
    "  [created \"2026-11-25T10:42:57Z\"]\n"
    "  [delegations [\n"
    "    [\n"
    "      [paths [\n"
    "        \"packages/0install\"\n"
    "      ]]\n"
    "      [terminating \"true\"]\n"
    "      [valid [\n"
    "        a-0install\n"
    "        \"sha256=37910b07b844f569895c3b58d5630f9089089a188f005c69ac032218147d7ca9\"\n"
    "        0x0\n"
    "      ]]\n"
    "    ]\n"
    "    [\n"
    "      [paths [\n"
    "        \"packages/a\"\n"
    "        \"/packages/b\"\n"
    "      ]]\n"
    "      [terminating \"no\"]\n"
    "      [valid m1]\n"
    "    ]\n"
    "  ]]\n"
    "  [epoch 0x0]\n"
    "  [keys []]\n"
    "  [name \"m1\"]\n"
    "  [targets []]\n"
    "  [typ targets]\n"
    "  [valid m1]\n"
    "  [version 0]\n"
    "]\n";

/* r1 and r2 have the same canonical form. */
static void
canon_same(
    const struct cx_resource *r1, const struct cx_resource *r2, const char *what, const char *how)
{
	struct cx_buf c1, c2;

	cx_buf_init(&c1, 0);
	cx_buf_init(&c2, 0);
	ck_assert_int_eq(cx_resource_canon(r1, &c1), 0);
	ck_assert_int_eq(cx_resource_canon(r2, &c2), 0);
	ck_assert_msg(c1.len == c2.len && memcmp(c1.d, c2.d, c1.len) == 0,
	    "%s: canonical forms differ%s", what, how);
	cx_buf_free(&c1);
	cx_buf_free(&c2);
}

/*
 * cx_resource_parse_begin + finish is cx_resource_parse_ex(CX_PARSE_INPLACE):
 * the same result or error, the same canonical bytes, the same bytes left in
 * the buffer; begin alone (and abandon) writes nothing.
 */
static void
split_same(const char *data, size_t len, enum cx_rtype type, const char *what)
{
	struct cx_arena a;
	struct cx_parse_pending pp;
	struct cx_resource *r1 = NULL, *r2 = NULL;
	struct cx_err e1 = {0}, e2 = {0};
	char *one = malloc(len + 1), *two = malloc(len + 1);
	int rc1, rc2;

	ck_assert_ptr_nonnull(one);
	ck_assert_ptr_nonnull(two);
	memcpy(one, data, len);
	memcpy(two, data, len);
	cx_arena_init(&a, 0);
	rc1 = cx_resource_parse_ex(
	    &a, "t", (const uint8_t *)one, len, type, &r1, NULL, &e1, CX_PARSE_INPLACE);
	cx_resource_parse_begin(&a, "t", (const uint8_t *)two, len, &pp);
	ck_assert_msg(memcmp(two, data, len) == 0, "%s: begin wrote the input", what);
	rc2 = cx_resource_parse_finish(&pp, "t", type, &r2, NULL, &e2);
	ck_assert_msg(rc1 == rc2, "%s: in place %d (%s), in two steps %d (%s)", what, rc1, e1.msg,
	    rc2, e2.msg);
	ck_assert_msg(memcmp(one, two, len) == 0, "%s: the buffers differ", what);
	if (rc1 != 0) {
		ck_assert_str_eq(e1.msg, e2.msg);
	} else {
		canon_same(r1, r2, what, " (two steps)");
	}
	memcpy(two, data, len);
	cx_resource_parse_begin(&a, "t", (const uint8_t *)two, len, &pp);
	cx_resource_parse_abandon(&pp);
	ck_assert_msg(memcmp(two, data, len) == 0, "%s: abandon wrote the input", what);
	cx_arena_free(&a);
	free(one);
	free(two);
}

/* Parses data with and without the fast path (copied, and in place): the same result, or the same error. */
static void
fast_same(const char *data, size_t len, const char *what)
{
	static const enum cx_rtype types[] = {CX_R_TARGETS, CX_R_SNAPSHOT};
	static const int modes[] = {CX_PARSE_FAST, CX_PARSE_INPLACE};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
			struct cx_arena a;
			struct cx_resource *r1 = NULL, *r2 = NULL;
			struct cx_err e1 = {0}, e2 = {0};
			struct cx_buf c1, c2;
			char *copy = malloc(len + 1);
			int rc1, rc2;

			ck_assert_ptr_nonnull(copy);
			memcpy(copy, data, len);
			cx_arena_init(&a, 0);
			rc1 = cx_resource_parse_ex(&a, "t", (const uint8_t *)copy, len, types[i],
			    &r1, NULL, &e1, modes[m]);
			rc2 = cx_resource_parse_ex(&a, "t", (const uint8_t *)data, len, types[i],
			    &r2, NULL, &e2, CX_PARSE_GENERIC);
			ck_assert_msg(rc1 == rc2, "%s: fast %d (%s), generic %d (%s)", what, rc1,
			    e1.msg, rc2, e2.msg);
			if (rc1 != 0) {
				ck_assert_str_eq(e1.msg, e2.msg);
			} else {
				canon_same(r1, r2, what, "");
				cx_buf_init(&c1, 0);
				cx_buf_init(&c2, 0);
				rc1 = cx_resource_write(r1, &c1, &e1);
				rc2 = cx_resource_write(r2, &c2, &e2);
				ck_assert_msg(rc1 == rc2, "%s: the writer: %d, %d", what, rc1, rc2);
				ck_assert_msg(c1.len == c2.len && memcmp(c1.d, c2.d, c1.len) == 0,
				    "%s: written documents differ", what);
				cx_buf_free(&c1);
				cx_buf_free(&c2);
			}
			cx_arena_free(&a);
			free(copy);
		}
		split_same(data, len, types[i], what);
	}
}

/* Every byte deleted, and every byte replaced by each of a few syntax bytes. */
static void
mutate(const char *doc, size_t n)
{
	static const char bytes[] = " \n\t\r\"[]()#\\x0/.&|{}-+:_a";
	char *buf = malloc(n + 1);

	ck_assert_ptr_nonnull(buf);
	for (size_t i = 0; i < n; i++) {
		memcpy(buf, doc, i);
		memcpy(buf + i, doc + i + 1, n - i - 1);
		fast_same(buf, n - 1, "a byte deleted");
		for (size_t j = 0; j < sizeof(bytes) - 1; j++) {
			memcpy(buf, doc, n);
			buf[i] = bytes[j];
			fast_same(buf, n, "a byte replaced");
		}
	}
	free(buf);
}

START_TEST(test_targets_fast)
{
	static const char *const subst[][2] = {
	    {"[filename \"packages/foo", "[filename \"/packages/foo"},
	    {"foo.1.0/opam", "foo.1.0/../opam"},
	    {"foo.1.0/opam", "foo.1.0//opam"},
	    {"foo.1.0/opam", "foo.1.0/./opam"},
	    {"foo.1.0/opam\"", "foo.1.0/opam \""},
	    {"\"packages/foo/foo.1.0", "\" packages/foo/foo.1.0"},
	    {"foo.1.0/opam", "foo.1.0/op\\x61m"},
	    {"foo.1.0/opam", "foo.1.0/op\tam"},
	    {"foo.1.0/opam\"", "foo.1.0/opam\"\"\""},
	    {"[filename \"", "[filename \"\"\""},
	    {"[size 0x40D]", "[size 0x4_0D]"},
	    {"[size 0x40D]", "[size 0x40G]"},
	    {"[size 0x40D]", "[size 0x]"},
	    {"[size 0x40D]", "[size 0x40D+a]"},
	    {"[size 0x40D]", "[size 0x40D:a]"},
	    {"[size 0x40D]", "[size 0x10000000000000000]"},
	    {"[size 0x40D]", "[size 0xFFFFFFFFFFFFFFFF]"},
	    {"[size 0x40D]", "[size 1037]"},
	    {"[size 0x40D]", "[size 0x40D][size 0x1]"},
	    {"[size 0x40D]", "[size 0x40D] [filename \"a/b\"]"},
	    {"[size 0x40D]", "[size \"0x40D\"]"},
	    {"\"sha256=72", "\"sha512=72"},
	    {"\"sha256=72", "\"sha25672"},
	    {"\"sha256=72", "\"sha256==72"},
	    {"[digest [\n        \"sha256=72ea300f70ce01445fa0c4a1c256a3bede7ad54c82b7e033fa8ad1ed5684c9e9\"\n      ]]",
	        "[digest []]"},
	    {"[digest [", "[digest ["},
	    {"[digest [", "[digest_ ["},
	    {"[digest [", "[digest["},
	    {"[digest [", "[ digest\t[ "},
	    {"[digest [", "[digest (* c *) ["},
	    {"[digest [", "[digest # c\n ["},
	    {"[digest [", "[digest \r\n ["},
	    {"[digest [", "[digest \r ["},
	    {"  [targets [\n    [\n      [digest",
	        "  [targets [\n    [\n      [filename \"x/y\"]\n      [digest"},
	    {"  [targets [", "  [targets [] [targets ["},
	    {"  [targets [", "  [targets []]\n  [targets ["},
	    {"      [size 0x3F7]\n    ]\n  ]]", "      [size 0x3F7]\n    ]\n  ]]\n  [targets []]"},
	    {"      [size 0x3F7]\n    ]\n  ]]", "      [size 0x3F7]\n    ]\n  ] & x]"},
	    {"      [size 0x3F7]\n    ]\n  ]]", "      [size 0x3F7]\n    ]\n  ] x]"},
	    {"      [size 0x3F7]\n    ]\n  ]]", "      [size 0x3F7]\n    ]\n  ]]]"},
	    {"      [size 0x3F7]\n    ]\n  ]]", "      [size 0x3F7]\n    ]\n  ]{}]"},
	    {"  [targets [", "  [targets & ["},
	    {"  [targets [", "  ([targets [) x"},
	    {"  [targets [", "  [targets ([\n"},
	    {"  [targets [", "  [targets emptymap] [x ["},
	    {"[typ targets]", "[typ snapshot]"},
	    {"[typ targets]", "[typ target]"},
	    {"[version 0]", "[version 0] [bogus 1]"},
	    {"signed: [", "signed: [[targets []]"},
	    {"signed: [",
	        "signed: [[targets [[[digest [\"sha256=ab\"]] [filename \"a/b\"] [size 0x1]]]]"},
	    {"signatures: [", "signed: [[typ targets]]\nsignatures: ["},
	    {"signatures: [", "signatures: [] signatures: ["},
	    {"[name \"m1\"]", "[name \"m1\"]\n  [name \"m2\"]"},
	};
	struct cx_arena a;
	struct cx_wire *w;
	struct cx_fast_targets *fast = NULL;
	struct cx_err e = {0};
	char *buf;
	size_t n = sizeof(fast_doc) - 1;

	/* the fast path is taken on the writer's layout: the comparisons below are not vacuous */
	cx_arena_init(&a, 0);
	ck_assert_int_eq(
	    cx_wire_parse_fast(&a, "t", (const uint8_t *)fast_doc, n, &w, &fast, 0, &e), 0);
	ck_assert_ptr_nonnull(fast);
	ck_assert_uint_eq(fast->n, 2);
	cx_arena_free(&a);
	fast_same(fast_doc, n, "the writer's layout");

	ck_assert_ptr_nonnull(buf = malloc(n + 200));
	for (size_t i = 0; i < sizeof(subst) / sizeof(subst[0]); i++) {
		const char *at = strstr(fast_doc, subst[i][0]);
		size_t ol = strlen(subst[i][0]), nl = strlen(subst[i][1]), pre;
		ck_assert_msg(at != NULL, "substitution %zu does not apply", i);
		pre = (size_t)(at - fast_doc);
		memcpy(buf, fast_doc, pre);
		memcpy(buf + pre, subst[i][1], nl);
		memcpy(buf + pre + nl, at + ol, n - pre - ol);
		fast_same(buf, n - ol + nl, subst[i][1]);
	}
	free(buf);
	mutate(fast_doc, sizeof(fast_doc) - 1);
}
END_TEST

START_TEST(test_delegations_fast)
{
	static const char *const subst[][2] = {
	    {"\"true\"", "\"yes\""},
	    {"\"true\"", "\"false\""},
	    {"\"true\"", "\"maybe\""},
	    {"\"true\"", "\" true\""},
	    {"\"sha256=3791", "\"sha512=3791"},
	    {"        0x0\n", "        0x0 0x1\n"},
	    {"        0x0\n", "        1\n"},
	    {"        a-0install\n", "        0xa\n"},
	    {"        a-0install\n", "        true\n"},
	    {"        a-0install\n", "        a+b\n"},
	    {"        a-0install\n", "        (1 a)\n"},
	    {"[valid m1]\n    ]", "[valid (1 [m1 m2])]\n    ]"},
	    {"[valid m1]\n    ]", "[valid m1 & m2]\n    ]"},
	    {"[valid m1]\n    ]", "[valid emptymap]\n    ]"},
	    {"[valid m1]\n    ]", "[valid []]\n    ]"},
	    {"[valid m1]\n    ]", "[valid m1]\n      [valid m2]\n    ]"},
	    {"\"packages/a\"", "\"packages/../a\""},
	    {"\"packages/a\"", "a b"},
	    {"[paths [\n        \"packages/0install\"\n      ]]", "[paths []]"},
	    {"[terminating \"true\"]\n", ""},
	    {"  [delegations [", "  [delegations [] [delegations ["},
	    {"  [targets []]", "  [targets []] [delegations []]"},
	};
	size_t n = sizeof(fast_dels) - 1;
	struct cx_arena a;
	struct cx_wire *w;
	struct cx_fast_targets *fast = NULL;
	struct cx_err e = {0};
	char *buf;

	cx_arena_init(&a, 0);
	ck_assert_int_eq(
	    cx_wire_parse_fast(&a, "t", (const uint8_t *)fast_dels, n, &w, &fast, 0, &e), 0);
	ck_assert_ptr_nonnull(fast);
	ck_assert_int_eq(fast->next != NULL ? fast->next->is_dels : fast->is_dels, 1);
	cx_arena_free(&a);
	fast_same(fast_dels, n, "the writer's layout");
	ck_assert_ptr_nonnull(buf = malloc(n + 200));
	for (size_t i = 0; i < sizeof(subst) / sizeof(subst[0]); i++) {
		const char *at = strstr(fast_dels, subst[i][0]);
		size_t ol = strlen(subst[i][0]), nl = strlen(subst[i][1]), pre;
		ck_assert_msg(at != NULL, "substitution %zu does not apply", i);
		pre = (size_t)(at - fast_dels);
		memcpy(buf, fast_dels, pre);
		memcpy(buf + pre, subst[i][1], nl);
		memcpy(buf + pre + nl, at + ol, n - pre - ol);
		fast_same(buf, n - ol + nl, subst[i][1]);
	}
	free(buf);
	mutate(fast_dels, n);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("wire");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int nf;

	tcase_add_test(tc, test_decode_rules);
	tcase_add_test(tc, test_reject);
	tcase_add_test(tc, test_depth);
	tcase_add_test(tc, test_testrepo_tbs);
	tcase_add_test(tc, test_testrepo_roundtrip);
	tcase_add_test(tc, test_expr_roundtrip);
	tcase_add_test(tc, test_resource_errors);
	tcase_add_test(tc, test_time);
	tcase_add_test(tc, test_targets_fast);
	tcase_add_test(tc, test_delegations_fast);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? 0 : 1;
}
