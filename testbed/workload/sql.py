"""Flink SQL text as statements: the one splitter and classifier the harness and the SQL runner use.

    statements("-- a header\\nSET 'a' = 'b';\\nINSERT INTO results SELECT ';' FROM events; -- the end")
    -> [Statement(1, 2, "set", "SET 'a' = 'b'"), Statement(2, 3, "dml", "INSERT INTO results SELECT ';' FROM events")]

- ``--`` comments (to the end of the line) and ``/* */`` comments are removed first, wherever they
  are; a ``/*+ ... */`` hint is Flink's own syntax and is kept. Nothing inside a string literal
  (``'...'``, with ``''`` for a quote) or a quoted identifier (`` `...` ``, ``"..."``) is a comment or
  an end of statement.
- A statement ends with a ``;`` outside literals, comments and identifiers. ``EXECUTE STATEMENT SET
  BEGIN ...; ...; END`` is one statement.
- Each statement gets a kind: ``set`` (``SET 'key' = 'value'``), ``table`` (``CREATE TABLE``,
  ``CATALOG`` or ``DATABASE``), ``ddl`` (``CREATE VIEW`` or ``FUNCTION``), ``dml`` (``INSERT``,
  ``EXECUTE INSERT``, ``EXECUTE STATEMENT SET``), ``drop`` (``DROP``, ``ALTER``, ``USE``) or
  ``other`` (anything else: a ``SELECT``, ``SHOW``, a ``SET`` of another form ...).

The SQL runner (``workload/java/SqlRunner.java``) does not split or classify anything itself: it
reads ``runner_script``'s records, kind and text, and a validating run executes only ``set`` and
DDL and explains ``dml``: it never submits a job, and refuses any other kind by its number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# separators of the runner's input: a record per statement, its fields (kind, text; a set's key and
# value). ASCII's record and unit separators, which no SQL text holds (checked).
RECORD, UNIT = "\x1e", "\x1f"


class SqlError(ValueError):
    """SQL text that cannot be split: an unterminated literal, identifier or comment."""


@dataclass(frozen=True)
class Statement:
    number: int     # from 1, in the text given
    line: int       # the line it starts on, from 1
    kind: str       # set | table | ddl | dml | drop | other
    text: str       # without comments, stripped

    @property
    def setting(self) -> tuple[str, str]:
        """A ``set`` statement's key and value."""
        m = _SET.match(self.text)
        if not m:
            raise ValueError(f"statement {self.number} is not SET 'key' = 'value'")
        return m.group(1).replace("''", "'"), m.group(2).replace("''", "'")

    def head(self, words: int = 4) -> str:
        return " ".join(self.text.split()[:words])


_SET = re.compile(r"(?is)^SET\s+'((?:[^']|'')*)'\s*=\s*'((?:[^']|'')*)'$")
_KINDS = (
    ("table", re.compile(r"(?is)^CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMPORARY\s+)?(?:TABLE|CATALOG|DATABASE)\b")),
    ("ddl", re.compile(r"(?is)^CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMPORARY\s+(?:SYSTEM\s+)?)?(?:VIEW|FUNCTION)\b")),
    ("dml", re.compile(r"(?is)^(?:EXECUTE\s+)?INSERT\s+(?:INTO|OVERWRITE)\b|^EXECUTE\s+STATEMENT\s+SET\s+BEGIN\b")),
    ("drop", re.compile(r"(?is)^(?:DROP|ALTER|USE)\b")),
)
_STATEMENT_SET = re.compile(r"(?is)^EXECUTE\s+STATEMENT\s+SET\s+BEGIN\b")


def blank_literals(text: str) -> str:
    """The text with the inside of every string literal removed (``'...'`` -> ``''``)."""
    return re.sub(r"'(?:[^']|'')*'", "''", text)


def kind_of(text: str) -> str:
    if _SET.match(text):
        return "set"
    return next((kind for kind, pattern in _KINDS if pattern.match(text)), "other")


def strip_comments(text: str) -> str:
    """The text with its comments removed (hints kept). Each comment becomes a space, and the line
    breaks inside a block comment stay, so lines keep their numbers."""
    return "".join(piece for piece, _code in _scan(text))


def _past_quoted(text: str, i: int) -> int:
    """The index just past the literal or quoted identifier that opens at ``i`` (a doubled quote
    inside stands for one); SqlError naming the line when it never closes."""
    c, j, n = text[i], i + 1, len(text)
    while True:
        j = text.find(c, j)
        if j < 0:
            what = "string literal" if c == "'" else "quoted identifier"
            raise SqlError(f"line {text.count(chr(10), 0, i) + 1}: unterminated {what} {text[i:i + 30]!r}")
        if j + 1 < n and text[j + 1] == c:
            j += 2
            continue
        return j + 1


def _scan(text: str):
    """(piece, is_code) in order; pieces of comments are replaced by what stands for them."""
    i, n = 0, len(text)
    start = 0
    while i < n:
        c = text[i]
        if c in "'`\"":
            i = _past_quoted(text, i)
        elif text.startswith("--", i):
            yield text[start:i], True
            j = text.find("\n", i)
            i = n if j < 0 else j
            yield " ", False
            start = i
        elif text.startswith("/*", i) and not text.startswith("/*+", i):
            yield text[start:i], True
            j = text.find("*/", i + 2)
            if j < 0:
                raise SqlError(f"line {text.count(chr(10), 0, i) + 1}: unterminated /* comment")
            yield " " + "\n" * text.count("\n", i, j), False
            i = start = j + 2
        else:
            i += 1
    yield text[start:], True


def _split_code(code: str) -> list[tuple[int, str]]:
    """(offset, piece) between the ``;`` of comment-free text that are outside literals."""
    pieces, start, i, n = [], 0, 0, len(code)
    while i < n:
        c = code[i]
        if c in "'`\"":
            i = _past_quoted(code, i)
        elif c == ";":
            pieces.append((start, code[start:i]))
            start = i = i + 1
        else:
            i += 1
    pieces.append((start, code[start:]))
    return pieces


def statements(text: str) -> list[Statement]:
    """The statements of a SQL text, numbered, with the line each starts on and its kind."""
    if RECORD in text or UNIT in text:
        raise SqlError("the text holds an ASCII record or unit separator (0x1e, 0x1f)")
    code = strip_comments(text)
    out: list[Statement] = []
    pending: list[str] = []         # the parts of an EXECUTE STATEMENT SET BEGIN ... END so far
    pending_at = 0
    for offset, piece in _split_code(code):
        s = piece.strip()
        if not s and not pending:
            continue
        at = offset + (len(piece) - len(piece.lstrip()))
        if pending:
            if not s:
                continue            # ';;' inside a statement set, as anywhere else
            pending.append(s)
            if s.upper() != "END":
                continue
            s, at, pending = ";\n".join(pending[:-1]) + ";\nEND", pending_at, []
        elif _STATEMENT_SET.match(s):
            pending, pending_at = [s], at
            continue
        out.append(Statement(len(out) + 1, code.count("\n", 0, at) + 1, kind_of(s), s))
    if pending:
        raise SqlError(f"line {code.count(chr(10), 0, pending_at) + 1}: EXECUTE STATEMENT SET BEGIN without END")
    return out


def runner_script(text: str) -> str:
    """What the SQL runner reads: one record per statement, its kind and text (a set: its key and value)."""
    records = []
    for s in statements(text):
        fields = [s.kind, *s.setting] if s.kind == "set" else [s.kind, s.text]
        records.append(UNIT.join(fields))
    return RECORD.join(records)
