/*
 * Whole-file reads and crash-safe replacement of files, for the signing
 * tools: a resource is either the old file or the complete new one, never a
 * torn mix, whatever fails in between.
 */
#ifndef CX_FILEIO_H
#define CX_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/buf.h"
#include "proto/err.h"

/*
 * Reads the regular file path (a symlink is refused: lstat) into out (reset
 * first).  CX_ENOENT when absent, CX_ETOOBIG above cap bytes.
 */
int cx_file_read(const char *path, size_t cap, struct cx_buf *out, struct cx_err *e);

/*
 * Replaces path with the n bytes at d: a temporary file in the same
 * directory is written, fsynced and renamed over path, then the directory
 * is fsynced.  On any failure the temporary file is removed and path is
 * left as it was.  The new file gets the old file's mode, or mode when there
 * was none.
 */
int cx_file_write_atomic(
    const char *path, const uint8_t *d, size_t n, mode_t mode, struct cx_err *e);

/* 1 if path is a regular file (lstat), 0 if absent, CX_EREJECT / CX_EIO otherwise. */
int cx_file_exists(const char *path, struct cx_err *e);

/*
 * All n bytes, through EINTR and short transfers: 0, or -1 with errno (a
 * read that meets the end of the file first: EIO).
 */
int cx_fd_write_full(int fd, const void *d, size_t n);
int cx_fd_pwrite_full(int fd, const void *d, size_t n, off_t off);
int cx_fd_pread_full(int fd, void *d, size_t n, off_t off);

#endif
