"""parse_encoder: an encoder spec string -> a GridEncoder, by a small parser (never eval).

Grammar (whitespace between tokens is ignored)::

    encoder := NAME "(" [arg ("," arg)*] ")"
    arg     := [NAME "="] (encoder | STRING | INT)
    STRING  := '...' or "..." (no escapes)

NAME must be one of the encoders in :data:`arcx.prompts.encoders.ENCODERS`; their
constructors check the argument types, e.g.
``GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))``,
``GridWithSeparationEncoder('|')``, ``RepeatNumberEncoder(n=3)``.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass

from arcx.prompts.encoders import ENCODERS, GridEncoder

_TOKEN = re.compile(
    r"\s*(?:(?P<name>[A-Za-z_]\w*)|(?P<int>-?\d+)|'(?P<s1>[^']*)'|\"(?P<s2>[^\"]*)\"|(?P<punct>[(),=]))"
)


# Encoders nest a few deep at most; the parser recurses once per level, so a hostile spec of
# thousands of nested calls must stop here rather than in a RecursionError.
MAX_DEPTH = 16
MAX_SPEC_CHARS = 1000


class EncoderSpecError(ValueError):
    """A spec string that does not name a valid encoder; the message points at the column."""


@dataclass(frozen=True)
class _Tok:
    kind: str  # name, int, str, punct, end
    value: str | int
    col: int


def _tokenize(spec: str) -> list[_Tok]:
    toks, pos = [], 0
    while pos < len(spec):
        if spec[pos:].strip() == "":
            break
        m = _TOKEN.match(spec, pos)
        if not m:
            raise EncoderSpecError(
                f"encoder spec {spec!r}: unexpected character {spec[pos:].lstrip()[0]!r} "
                f"at column {pos + len(spec[pos:]) - len(spec[pos:].lstrip()) + 1}"
            )
        col = m.start(m.lastgroup) + 1
        if m.group("name") is not None:
            toks.append(_Tok("name", m.group("name"), col))
        elif m.group("int") is not None:
            toks.append(_Tok("int", int(m.group("int")), col))
        elif m.group("s1") is not None or m.group("s2") is not None:
            toks.append(
                _Tok("str", m.group("s1") if m.group("s1") is not None else m.group("s2"), col)
            )
        else:
            toks.append(_Tok("punct", m.group("punct"), col))
        pos = m.end()
    toks.append(_Tok("end", "", len(spec) + 1))
    return toks


class _Parser:
    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.toks = _tokenize(spec)
        self.i = 0
        self.depth = 0

    def error(self, tok: _Tok, msg: str) -> EncoderSpecError:
        return EncoderSpecError(f"encoder spec {self.spec!r}, column {tok.col}: {msg}")

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self, kind: str, value: str | None = None) -> _Tok:
        tok = self.peek()
        if tok.kind != kind or (value is not None and tok.value != value):
            want = repr(value) if value is not None else kind
            got = "the end" if tok.kind == "end" else repr(tok.value)
            raise self.error(tok, f"expected {want}, found {got}")
        self.i += 1
        return tok

    def encoder(self) -> GridEncoder:
        name_tok = self.take("name")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(name_tok, f"encoders nested more than {MAX_DEPTH} deep")
        name = str(name_tok.value)
        cls = ENCODERS.get(name)
        if cls is None:
            raise self.error(
                name_tok, f"unknown encoder {name!r}; known: {', '.join(sorted(ENCODERS))}"
            )
        self.take("punct", "(")
        args: list[object] = []
        kwargs: dict[str, object] = {}
        if not (self.peek().kind == "punct" and self.peek().value == ")"):
            while True:
                tok = self.peek()
                nxt = self.toks[min(self.i + 1, len(self.toks) - 1)]
                if tok.kind == "name" and nxt.kind == "punct" and nxt.value == "=":
                    self.i += 2
                    kwargs[str(tok.value)] = self.value()
                else:
                    if kwargs:
                        raise self.error(tok, "a positional argument after a keyword argument")
                    args.append(self.value())
                if self.peek().kind == "punct" and self.peek().value == ",":
                    self.i += 1
                    continue
                break
        self.take("punct", ")")
        self.depth -= 1
        try:
            inspect.signature(cls).bind(*args, **kwargs)
            return cls(*args, **kwargs)
        except (TypeError, ValueError) as err:
            raise self.error(name_tok, f"bad arguments for {name}: {err}") from None

    def value(self) -> object:
        tok = self.peek()
        if tok.kind == "name":
            return self.encoder()
        if tok.kind in ("int", "str"):
            self.i += 1
            return tok.value
        got = "the end" if tok.kind == "end" else repr(tok.value)
        raise self.error(tok, f"expected an encoder, a string or an integer, found {got}")


def parse_encoder(spec: str) -> GridEncoder:
    """Build the encoder a spec string names; EncoderSpecError says what is wrong and where."""
    if not isinstance(spec, str):
        raise EncoderSpecError(f"encoder spec must be a string, not {type(spec).__name__}")
    if len(spec) > MAX_SPEC_CHARS:
        raise EncoderSpecError(f"encoder spec is {len(spec)} characters; at most {MAX_SPEC_CHARS}")
    parser = _Parser(spec)
    encoder = parser.encoder()
    parser.take("end")
    return encoder
