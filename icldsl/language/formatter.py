"""`icldsl fmt`: one canonical layout for a `.icl` file, comments kept.

The layout comes from the IR: four-space indents, aligned field columns,
aligned step names and train keys, one blank line between blocks (and where the
source had one between lines of a block). Every emitted line remembers the
source line it came from; comments go back beside those lines: a comment on
its own line before the first line that came from after it, a trailing comment
after the last line that came from its line or before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from . import ir
from .parser import parse
from .source import Source

INDENT = "    "
WIDTH = 100
ONE_LINERS = (ir.Import, ir.LM, ir.Embedding, ir.Tool, ir.Data)
ALIGN_LIMIT = 32


@dataclass(slots=True)
class Line:
    text: str
    origin: float | None  # the source line it came from; None for blank lines
    closing: bool = False  # a closing brace: comments before it go one level deeper
    comment: bool = False  # a comment on its own line
    trailing: bool = False  # code followed by a comment
    opens: bool = False  # ends a block's first line (before any trailing comment)


def format_source(source: Source) -> str:
    """The file in canonical layout; raises CheckError on a syntax error."""
    module = parse(source, keep_comments=True)
    code = _blank_comments(source.text, module.comments)
    lines = _module_lines(module, source, code)
    return _render(_weave(lines, module.comments, source))


# ---- values and types ------------------------------------------------------------


def value(v: ir.Value) -> str:
    if isinstance(v, ir.Literal):
        if isinstance(v.value, bool):
            return "true" if v.value else "false"
        return json.dumps(v.value, ensure_ascii=False) if isinstance(v.value, str) else repr(v.value)
    if isinstance(v, ir.ListValue):
        return "[" + ", ".join(value(i) for i in v.items) + "]"
    if isinstance(v, ir.MapValue):
        return "{ " + ", ".join(f"{a.name}: {value(a.value)}" for a in v.items) + " }" if v.items else "{}"
    if isinstance(v, ir.EnvValue):
        return f"env({json.dumps(v.var)})"
    if isinstance(v, ir.Ref):
        return str(v)
    return f"{v.func}({_args(v.args)})"


def _args(args: tuple[ir.Arg, ...]) -> str:
    return ", ".join(value(a.value) if a.name is None else f"{a.name}: {value(a.value)}" for a in args)


class _TypeText(ir.TypeVisitor[str]):
    """A type as the canonical layout writes it."""

    def named(self, t: ir.NamedType) -> str:
        return t.name + _constraints(t)

    def list_(self, t: ir.ListType, item: str) -> str:
        return f"list[{item}]" + _constraints(t)

    def optional(self, t: ir.OptionalType, inner: str) -> str:
        return inner + "?"

    def enum(self, t: ir.EnumType) -> str:
        return "enum(" + ", ".join(json.dumps(c, ensure_ascii=False) for c in t.choices) + ")"


def _constraints(t: ir.NamedType | ir.ListType) -> str:
    return f"({_args(t.constraints)})" if t.constraints else ""


type_text = _TypeText().visit


# ---- layout ----------------------------------------------------------------------


def _blank_comments(text: str, comments: tuple[ir.Comment, ...]) -> str:
    """The text with comments replaced by spaces: what is left is code."""
    chars = list(text)
    for c in comments:
        chars[c.span.start:c.span.end] = " " * (c.span.end - c.span.start)
    return "".join(chars)


def _closing_line(code: str, source: Source, start: int) -> int:
    """The line of the `}` closing the first block opened at or after `start`."""
    depth, i, in_string = 0, code.index("{", start), False
    while i < len(code):
        ch = code[i]
        if in_string:
            in_string = ch != '"' or code[i - 1] == "\\" and code[i - 2] != "\\"
        elif ch == '"':
            in_string = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return source.position(i)[0]
        i += 1
    return source.position(len(code))[0]


def _had_blank(source: Source, after_line: int, before_line: int) -> bool:
    """Whether an empty line (no code, no comment) lies strictly between two lines."""
    return any(not source.line_text(n).strip() for n in range(after_line + 1, before_line))


def _module_lines(module: ir.Module, source: Source, code: str) -> list[Line]:
    lines: list[Line] = []
    previous: ir.Item | None = None
    for item in module.items:
        start = _item_start(item, code)
        line = source.position(start)[0]
        if previous is not None:
            keep_together = (type(item) is type(previous) and isinstance(item, ONE_LINERS)
                             and not _had_blank(source, _last_line(lines), line))
            if not keep_together:
                lines.append(Line("", None))
        lines += _item_lines(item, source, code, start, line)
        previous = item
    return lines


def _last_line(lines: list[Line]) -> int:
    return int(next(l.origin for l in reversed(lines) if l.origin is not None))


def _item_start(item: ir.Item, code: str) -> int:
    """Where an item's keyword starts: its span names it, the keyword comes before."""
    keyword = {ir.Import: "import", ir.Model: "model", ir.LM: "lm", ir.Embedding: "embedding", ir.Tool: "tool", ir.Program: "program",
               ir.Data: "data", ir.Train: "train"}[type(item)]
    return code.rindex(keyword, 0, item.span.start + 1)


def _item_lines(item: ir.Item, source: Source, code: str, start: int, line: int) -> list[Line]:
    if isinstance(item, ir.Import):
        return [Line(f"import {value(item.path)}", line)]
    if isinstance(item, ir.Tool):
        return [Line(f"tool {item.name} = {value(item.impl)}", line)]
    if isinstance(item, ir.Data):
        return [Line(f"data {item.name} = {value(item.loader)}", line)]
    if isinstance(item, (ir.LM, ir.Embedding)):
        return _lm_lines(item, source, code, start, line)
    end = _closing_line(code, source, start)
    if isinstance(item, ir.Model):
        head = f"model {item.name} {{"
        body = _field_lines(item, source)
    elif isinstance(item, ir.Program):
        described = f" {value(ir.Literal(item.description, item.span))}" if item.description is not None else ""
        head = f"program {item.name}{described} {{"
        body = _program_lines(item, source)
    else:
        head = f"train {item.program} on {item.data} {{"
        body = _train_lines(item)
    return [Line(head, line), *_spaced(body, source), Line("}", end, closing=True)]


def _spaced(body: list[Line], source: Source) -> list[Line]:
    """Keep one blank line where the source had one between two lines of a block."""
    out: list[Line] = []
    for line in body:
        if out and line.origin is not None and out[-1].origin is not None \
                and _had_blank(source, int(out[-1].origin), int(line.origin)):
            out.append(Line("", None))
        out.append(line)
    return out


def _lm_lines(lm: ir.LM | ir.Embedding, source: Source, code: str, start: int, line: int) -> list[Line]:
    head = f"{'lm' if isinstance(lm, ir.LM) else 'embedding'} {lm.name} = {value(lm.target)}"
    if not lm.options:
        return [Line(head, line)]
    one = f"{head} {{ {', '.join(f'{a.name}: {value(a.value)}' for a in lm.options)} }}"
    if len(one) <= WIDTH:
        return [Line(one, line)]
    options = [Line(f"{INDENT}{a.name}: {value(a.value)},", a.span.line) for a in lm.options]
    return [Line(head + " {", line), *options, Line("}", _closing_line(code, source, start), closing=True)]


def _field_lines(model: ir.Model, source: Source) -> list[Line]:
    names = [f"{f.name}:" for f in model.fields]
    types = [type_text(f.type) for f in model.fields]
    name_width = max(map(len, names), default=0)
    described = [len(t) for t, f in zip(types, model.fields) if f.description is not None]
    # Descriptions line up in a column; a type too long for it just sticks out.
    type_width = max((n for n in described if n <= ALIGN_LIMIT), default=0)
    lines = []
    for name, type_, f in zip(names, types, model.fields):
        text = f"{INDENT}{name:<{name_width}} {type_}"
        if f.description is not None:
            text = f"{INDENT}{name:<{name_width}} {type_:<{type_width}} {json.dumps(f.description, ensure_ascii=False)}"
        lines.append(Line(text, f.span.line))
    return lines


def _step_text(step: ir.Step) -> tuple[str, str | None]:
    """A step's text, and its instructions clause (placed by the caller)."""
    parts = ["frozen"] if step.frozen else []
    parts += [step.kind, step.model.name, "from", " + ".join(str(r) for r in step.sources)]
    if step.lm:
        parts += ["using", step.lm.name]
    if step.tools:
        parts += ["tools", "[" + ", ".join(t.name for t in step.tools) + "]"]
    if step.max_steps is not None:
        parts += ["max_steps", value(step.max_steps)]
    clause = f"instructions {value(step.instructions)}" if step.instructions else None
    return " ".join(parts), clause


def _with_clause(head: str, text: str, clause: str | None, origin: int) -> list[Line]:
    """`head + text`, with the instructions clause on the same line when it fits,
    else on the next line, one indent deeper than the statement."""
    if clause is None:
        return [Line(head + text, origin)]
    if len(head + text + " " + clause) <= WIDTH:
        return [Line(f"{head}{text} {clause}", origin)]
    indent = head[: len(head) - len(head.lstrip())]
    return [Line(head + text, origin), Line(indent + INDENT + clause, origin)]


def _program_lines(program: ir.Program, source: Source) -> list[Line]:
    width = max([6, *(len(s.name) for s in program.steps)])
    statements: list[tuple[int, list[Line]]] = []
    for inp in program.inputs:
        statements.append((inp.span.start, [Line(f"{INDENT}{'input':<{width}} {inp.name}: {inp.model}", inp.span.line)]))
    for item in program.steps:
        head = f"{INDENT}{item.name:<{width}} = "
        if isinstance(item, ir.Step):
            text, clause = _step_text(item)
            statements.append((item.span.start, _with_clause(head, text, clause, item.span.line)))
            continue
        label_width = max(len(json.dumps(a.label) if a.label is not None else "_") for a in item.arms)
        arms: list[Line] = []
        for arm in item.arms:
            label = json.dumps(arm.label, ensure_ascii=False) if arm.label is not None else "_"
            text, clause = _step_text(arm.step)
            arms += _with_clause(f"{INDENT * 2}{label:<{label_width}} => ", text, clause, arm.span.line)
        closing = max(int(l.origin) for l in arms) + 1
        statements.append((item.span.start, [Line(f"{head}branch {item.on} {{", item.span.line), *arms,
                                             Line(INDENT + "}", closing, closing=True)]))
    for out in program.outputs:
        refs = ", ".join(str(r) for r in out.refs)
        statements.append((out.span.start, [Line(f"{INDENT}{'output':<{width}} {refs}", out.span.line)]))
    return [line for _, group in sorted(statements, key=lambda s: s[0]) for line in group]


def _train_lines(train: ir.Train) -> list[Line]:
    width = max((len(s.key) for s in train.settings), default=0)
    lines = []
    for s in train.settings:
        if isinstance(s.value, ir.Checkpoint):
            text = f"best {s.value.monitor} {s.value.mode}"
        elif s.key == "early_stopping":
            text = f"patience {value(s.value)}"
        else:
            text = value(s.value)
        lines.append(Line(f"{INDENT}{s.key:<{width}} {text}", s.span.line))
    return lines


# ---- comments --------------------------------------------------------------------


def _indent(line: Line, *, inside: bool) -> str:
    """The indentation of `line`; one level deeper when `inside` the block it opens or closes."""
    indent = line.text[: len(line.text) - len(line.text.lstrip())]
    return indent + INDENT if inside else indent


def _statement_head(lines: list[Line], at: int) -> Line:
    """The first line of the statement `lines[at]` belongs to (a long step spans two)."""
    while at > 0 and not lines[at].closing and lines[at - 1].origin == lines[at].origin \
            and not lines[at - 1].comment and not lines[at - 1].closing and not _opens(lines[at - 1]):
        at -= 1
    return lines[at]


def _opens(line: Line) -> bool:
    return line.opens or line.text.endswith("{")


def _comment_blocks(comments: tuple[ir.Comment, ...], source: Source) -> list[list[ir.Comment]]:
    """Own-line comments on consecutive lines form one block; a trailing comment is a block alone."""
    blocks: list[list[ir.Comment]] = []
    for c in comments:
        trailing = bool(source.line_text(c.span.line)[: c.span.column - 1].strip())
        last = blocks[-1][-1] if blocks else None
        if not trailing and last is not None and last.span.line == c.span.line - 1 and not _is_trailing(last, source):
            blocks[-1].append(c)
        else:
            blocks.append([c])
    return blocks


def _is_trailing(c: ir.Comment, source: Source) -> bool:
    return bool(source.line_text(c.span.line)[: c.span.column - 1].strip())


def _weave(lines: list[Line], comments: tuple[ir.Comment, ...], source: Source) -> list[Line]:
    out = list(lines)
    for block in _comment_blocks(comments, source):
        first, last = block[0].span.line, block[-1].span.line
        if _is_trailing(block[0], source):
            at = max((i for i, l in enumerate(out) if l.origin is not None and l.origin <= first), default=None)
            text = block[0].text.rstrip()
            if at is None:
                out.insert(0, Line(text, first, comment=True))
            elif out[at].trailing or out[at].comment:  # one comment per line: the next goes below it
                head = _statement_head(out, at)
                out.insert(at + 1, Line(_indent(head, inside=_opens(out[at])) + text, out[at].origin, comment=True))
            else:
                line = out[at]
                out[at] = Line(f"{line.text}  {text}", line.origin, line.closing, trailing=True, opens=_opens(line))
            continue
        code = [i for i, l in enumerate(out) if l.origin is not None and not l.comment]
        before = max((i for i in code if out[i].origin < first), default=None)
        after = next((i for i in code if out[i].origin > last), None)
        prev, nxt = (out[before] if before is not None else None), (out[after] if after is not None else None)
        # Comments right under a line, with a gap below them, belong to that line.
        if prev is not None and not _had_blank(source, int(prev.origin), first) and (
                nxt is None or _had_blank(source, last, int(nxt.origin))):
            at, indent = before + 1, _indent(_statement_head(out, before), inside=_opens(prev))
            while at < len(out) and out[at].comment:
                at += 1
            gap = []
        elif nxt is not None:
            at, indent = after, _indent(nxt, inside=nxt.closing)
            gap = [Line("", None)] if _had_blank(source, last, int(nxt.origin)) else []
        else:
            at, indent, gap = len(out), "", []
        lead = [Line("", None)] if prev is not None and _had_blank(source, int(prev.origin), first) else []
        out[at:at] = [*lead, *(Line(indent + c.text.rstrip(), c.span.line, comment=True) for c in block), *gap]
    return _collapse_blanks(out)


def _collapse_blanks(lines: list[Line]) -> list[Line]:
    """At most one blank line in a row, none at either end of the file or of a block."""
    out: list[Line] = []
    for line in lines:
        if line.origin is None and (not out or out[-1].origin is None or _opens(out[-1])):
            continue
        if line.closing and out and out[-1].origin is None:
            out.pop()
        out.append(line)
    while out and out[-1].origin is None:
        out.pop()
    return out


def _render(lines: list[Line]) -> str:
    return "\n".join(l.text.rstrip() for l in lines) + "\n" if lines else ""
