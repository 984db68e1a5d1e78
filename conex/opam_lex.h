/* The opam-file-format lexer subset that conex files use (§2.2). Internal. */
#ifndef CX_OPAM_LEX_H
#define CX_OPAM_LEX_H

#include <stddef.h>
#include <stdint.h>

#include "proto/buf.h"
#include "proto/err.h"

enum cx_tok {
	CX_T_EOF = 0,
	CX_T_IDENT,
	CX_T_INT,
	CX_T_BOOL,
	CX_T_STRING,
	CX_T_COLON,
	CX_T_LBRACK,
	CX_T_RBRACK,
	CX_T_LPAREN,
	CX_T_RPAREN,
	CX_T_LBRACE,
	CX_T_RBRACE,
	CX_T_AND,
	CX_T_OR,
	CX_T_OP /* relational, environment or prefix operators: never valid in conex */
};

struct cx_lex {
	const char *name;
	const uint8_t *p, *end;
	const uint8_t *line_start;
	uint32_t line;
	/* the current token */
	enum cx_tok tok;
	uint32_t tline, tcol;
	const uint8_t *tstart; /* token text in the input (IDENT, INT, OP) */
	size_t tlen;
	int64_t ival;      /* INT */
	struct cx_buf str; /* STRING, escapes processed, not trimmed */
};

void cx_lex_init(struct cx_lex *l, const char *name, const uint8_t *data, size_t len);
void cx_lex_free(struct cx_lex *l);
/* Advances to the next token. 0 or CX_EPARSE/CX_ETOOBIG with "name:line:col: reason". */
int cx_lex_next(struct cx_lex *l, struct cx_err *e);
const char *cx_tok_name(enum cx_tok t);

#endif
