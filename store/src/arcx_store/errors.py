"""The store's errors: one family, so every reader (runner, verify, SAE, operator) catches the same."""

from __future__ import annotations


class StorageError(Exception):
    """Storage failed in a way a retry here will not fix; the message says where and why."""


class NotFound(StorageError):
    """The key does not exist."""


class StoreMismatch(Exception):
    """The store was made by another job (config, dataset or plan differ); resuming is refused."""


class StoreFormatError(StoreMismatch, StorageError):
    """The store's own files are malformed: a manifest or marker that is not UTF-8 JSON, not
    an object, lacks a field, names a key outside its place, or has a newer format version.

    A StoreMismatch (resume refuses it, exit 78) and a StorageError (readers that already
    catch storage failures keep working); the operator turns it into a condition.
    """


class BadStoreURI(StorageError):
    """The URI names no store arcx can open (empty, an unsupported scheme such as s3://, no
    bucket): the user must fix it (exit 78); a retry will not help."""
