"""Grid encoders in the arc24 family: a grid <-> the text the model reads and writes.

Base encoders write the cells; wrapper encoders take another encoder and add something
around or beside its text. Every encoder parses its own text back to the grid, strictly:
text it could not have written raises EncodingError saying which line and why, so a
model's malformed answer is reported, never guessed at.

=============================  ==========================================
``MinimalGridEncoder()``       ``012`` one line per row, one digit per cell
``GridWithSeparationEncoder('|')``  ``0|1|2`` cells joined by a symbol
``RepeatNumberEncoder(3)``     ``000111222`` every digit written n times
``GridCodeBlockEncoder(e)``    a fenced block: ```` ```grid ```` ... ```` ``` ````
``GridShapeEncoder(e)``        a fenced block headed ```` ```grid shape: 3x4 ````
``RowNumberEncoder(e)``        ``1 012``: every line prefixed with its 1-based number
``ReplaceNumberEncoder(e)``    digits replaced by the symbols ``ñò÷ûąćďęĚĞ``
=============================  ==========================================
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from arcx.tasks.grids import InvalidGrid, validate_grid
from arcx.tasks.task import Grid


class EncodingError(ValueError):
    """Text that the encoder could not have written; the message says where and why."""


def _finish(rows: list[list[int]]) -> Grid:
    try:
        return validate_grid(rows, "decoded grid")
    except InvalidGrid as err:
        raise EncodingError(str(err)) from None


def _lines(text: str) -> list[str]:
    body = text.strip("\n")
    if not body.strip():
        raise EncodingError("no grid: the text is empty")
    return body.split("\n")


def _digit_row(line: str, number: int) -> list[int]:
    if not line or not all("0" <= ch <= "9" for ch in line):
        raise EncodingError(f"line {number} is {line!r}; expected only the digits 0-9")
    return [ord(ch) - 48 for ch in line]


class GridEncoder(ABC):
    """``to_text(grid) -> str`` and its inverse ``to_grid(text) -> Grid``."""

    @abstractmethod
    def to_text(self, grid: Grid) -> str: ...

    @abstractmethod
    def to_grid(self, text: str) -> Grid: ...

    @abstractmethod
    def spec(self) -> str:
        """The spec string parse_encoder turns back into an equal encoder."""

    def __repr__(self) -> str:
        return self.spec()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GridEncoder) and self.spec() == other.spec()

    def __hash__(self) -> int:
        return hash(self.spec())


class MinimalGridEncoder(GridEncoder):
    def to_text(self, grid: Grid) -> str:
        return "\n".join("".join(map(str, row)) for row in grid)

    def to_grid(self, text: str) -> Grid:
        return _finish([_digit_row(line, i) for i, line in enumerate(_lines(text), start=1)])

    def spec(self) -> str:
        return "MinimalGridEncoder()"


class GridWithSeparationEncoder(GridEncoder):
    def __init__(self, split_symbol: str) -> None:
        if not isinstance(split_symbol, str):
            raise TypeError(f"split_symbol must be a string, not {split_symbol!r}")
        if not split_symbol or any(ch.isdigit() or ch == "\n" for ch in split_symbol):
            raise ValueError(
                f"split_symbol {split_symbol!r} must be non-empty, without digits or newlines"
            )
        if "'" in split_symbol:
            raise ValueError("split_symbol must not contain a single quote")
        self.split_symbol = split_symbol

    def to_text(self, grid: Grid) -> str:
        return "\n".join(self.split_symbol.join(map(str, row)) for row in grid)

    def to_grid(self, text: str) -> Grid:
        rows = []
        for i, line in enumerate(_lines(text), start=1):
            cells = line.split(self.split_symbol)
            if any(len(c) != 1 for c in cells):
                raise EncodingError(
                    f"line {i} is {line!r}; expected single digits separated by {self.split_symbol!r}"
                )
            rows.append(_digit_row("".join(cells), i))
        return _finish(rows)

    def spec(self) -> str:
        return f"GridWithSeparationEncoder('{self.split_symbol}')"


class RepeatNumberEncoder(GridEncoder):
    def __init__(self, n: int = 3) -> None:
        if not isinstance(n, int) or isinstance(n, bool):
            raise TypeError(f"n must be an integer, not {n!r}")
        if not 1 <= n <= 10:
            raise ValueError(f"n must be 1..10, not {n}")
        self.n = n

    def to_text(self, grid: Grid) -> str:
        return "\n".join("".join(str(v) * self.n for v in row) for row in grid)

    def to_grid(self, text: str) -> Grid:
        rows = []
        for i, line in enumerate(_lines(text), start=1):
            digits = _digit_row(line, i)
            chunks = [digits[j : j + self.n] for j in range(0, len(digits), self.n)]
            if len(digits) % self.n or any(len(set(c)) != 1 for c in chunks):
                raise EncodingError(
                    f"line {i} is {line!r}; expected every digit repeated {self.n} times"
                )
            rows.append([c[0] for c in chunks])
        return _finish(rows)

    def spec(self) -> str:
        return f"RepeatNumberEncoder({self.n})"


class _Wrapper(GridEncoder):
    def __init__(self, base_encoder: GridEncoder) -> None:
        if not isinstance(base_encoder, GridEncoder):
            raise TypeError(f"{type(self).__name__} wraps a GridEncoder, not {base_encoder!r}")
        self.encoder = base_encoder

    def spec(self) -> str:
        return f"{type(self).__name__}({self.encoder.spec()})"


def _fenced_body(text: str, header: str) -> tuple[str, str]:
    """The first header line starting with ``header``, and the lines up to its closing fence.

    Fences nest: a line that starts with ``` and says more opens a block, a bare ``` line
    closes the innermost one, so a block inside a block parses back.
    """
    lines = text.split("\n")
    for start, line in enumerate(lines):
        if line.startswith(header):
            depth = 1
            for end in range(start + 1, len(lines)):
                if lines[end] == "```":
                    depth -= 1
                    if depth == 0:
                        return line, "\n".join(lines[start + 1 : end])
                elif lines[end].startswith("```"):
                    depth += 1
            raise EncodingError(f"the block opened by {line!r} has no closing ``` line")
    raise EncodingError(f"no line starts with {header!r}")


class GridCodeBlockEncoder(_Wrapper):
    HEADER = "```grid"

    def to_text(self, grid: Grid) -> str:
        return f"{self.HEADER}\n{self.encoder.to_text(grid)}\n```"

    def to_grid(self, text: str) -> Grid:
        header, body = _fenced_body(text, self.HEADER)
        if header != self.HEADER:
            raise EncodingError(f"block header is {header!r}; expected {self.HEADER!r}")
        return self.encoder.to_grid(body)


class GridShapeEncoder(_Wrapper):
    HEADER = "```grid shape: "

    def to_text(self, grid: Grid) -> str:
        return f"{self.HEADER}{len(grid)}x{len(grid[0])}\n{self.encoder.to_text(grid)}\n```"

    def to_grid(self, text: str) -> Grid:
        header, body = _fenced_body(text, self.HEADER)
        shape = header.removeprefix(self.HEADER)
        h, sep, w = shape.partition("x")
        if not (sep and h.isdigit() and w.isdigit()):
            raise EncodingError(f"block header {header!r} does not give a shape like 3x4")
        grid = self.encoder.to_grid(body)
        if (len(grid), len(grid[0])) != (int(h), int(w)):
            raise EncodingError(
                f"block header says {h}x{w} but the grid is {len(grid)}x{len(grid[0])}"
            )
        return grid


class RowNumberEncoder(_Wrapper):
    def to_text(self, grid: Grid) -> str:
        lines = self.encoder.to_text(grid).split("\n")
        return "\n".join(f"{i} {line}" for i, line in enumerate(lines, start=1))

    def to_grid(self, text: str) -> Grid:
        stripped = []
        for i, line in enumerate(_lines(text), start=1):
            prefix = f"{i} "
            if not line.startswith(prefix):
                raise EncodingError(f"line {i} is {line!r}; expected it to start with {prefix!r}")
            stripped.append(line[len(prefix) :])
        return self.encoder.to_grid("\n".join(stripped))


class ReplaceNumberEncoder(_Wrapper):
    SYMBOLS = "ñò÷ûąćďęĚĞ"
    _TO_SYMBOLS = str.maketrans("0123456789", SYMBOLS)
    _TO_DIGITS = str.maketrans(SYMBOLS, "0123456789")

    def __init__(self, base_encoder: GridEncoder) -> None:
        super().__init__(base_encoder)
        inner: GridEncoder | None = base_encoder
        while inner is not None:
            if isinstance(inner, ReplaceNumberEncoder):
                raise ValueError(
                    "ReplaceNumberEncoder inside another cannot be parsed back; use one"
                )
            inner = getattr(inner, "encoder", None)

    def to_text(self, grid: Grid) -> str:
        return self.encoder.to_text(grid).translate(self._TO_SYMBOLS)

    def to_grid(self, text: str) -> Grid:
        for i, line in enumerate(text.split("\n"), start=1):
            if any(ch.isdigit() for ch in line):
                raise EncodingError(
                    f"line {i} is {line!r}; digits should have been written as {self.SYMBOLS}"
                )
        return self.encoder.to_grid(text.translate(self._TO_DIGITS))


ENCODERS: dict[str, type[GridEncoder]] = {
    cls.__name__: cls
    for cls in (
        MinimalGridEncoder,
        GridWithSeparationEncoder,
        RepeatNumberEncoder,
        GridCodeBlockEncoder,
        GridShapeEncoder,
        RowNumberEncoder,
        ReplaceNumberEncoder,
    )
}
