"""Keep the notebooks' code in the course's style: lines of at most 120 characters, no `;`-chained statements.

    python tools/nbfmt.py [--check] [--lengths] [nbs/X.ipynb ...]     # default: every nbs/*.ipynb

Only the offending statements of a code cell are rewritten, so the compact one-liners elsewhere (`if x: return y`)
stay as they are: a statement with a line over 120 characters or a `;` chain (`a = 1; b = 2`, `if x: a; b`) goes
through `ruff format --range` (line length 120, quotes kept); a comment too long is wrapped (a trailing one moves above
its line); a string literal too long is split by implicit concatenation. Directive lines (`#| export`) and IPython
magics (`%time`, `!ls`) are set aside and put back. A cell is rewritten only if its syntax tree (directives removed,
as tools/reference.py compares cells) is unchanged, so the cell keeps its stored reference outputs; a cell that cannot
be fixed that way is left as it was and reported.

--check changes nothing and exits 1 listing every offender (notebook, cell index, line). --lengths also lists the code
cells over 30 lines (reported, not enforced: aim for 25; build a long class across cells with fastcore's `@patch`)."""
import argparse, ast, difflib, importlib.util, io, json, os, re, subprocess, sys, tempfile, textwrap, tokenize
from pathlib import Path

MAX = 120         # characters per line
LONG_CELL = 30    # lines per code cell worth reporting
KEPT = re.compile(r"^(\s*)# nbfmt-kept-(\d+)$")


def cell_src(cell) -> str: return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _aside(line: str) -> bool: return line.lstrip().startswith(("#|", "%", "!"))


def tree(src: str) -> str | None:
    "What a cell's code means: its syntax tree without directive and magic lines (None if it does not parse)."
    try: return ast.dump(ast.parse("\n".join(l for l in src.splitlines() if not _aside(l))))
    except SyntaxError: return None


def set_aside(src: str) -> tuple[str, list]:
    "The cell's code with directive and magic lines replaced by placeholder comments, and the lines set aside."
    kept, out = [], []
    for line in src.splitlines():
        if _aside(line):
            out.append(f"{line[:len(line) - len(line.lstrip())]}# nbfmt-kept-{len(kept)}")
            kept.append(line)
        else: out.append(line)
    return "\n".join(out), kept


def put_back(code: str, kept: list) -> str:
    return "\n".join(kept[int(m[2])] if (m := KEPT.match(l)) else l for l in code.splitlines())


def _tokens(code: str) -> list:
    try: return list(tokenize.generate_tokens(io.StringIO(code + "\n").readline))
    except (tokenize.TokenError, SyntaxError, IndentationError): return []


def semicolon_lines(code: str) -> list[int]:
    "1-based lines that chain statements with `;`."
    return sorted({t.start[0] for t in _tokens(code) if t.type == tokenize.OP and t.string == ";"})


def long_lines(code: str) -> list[int]: return [i for i, l in enumerate(code.splitlines(), 1) if len(l) > MAX]


def offenders(src: str) -> list[tuple[int, str]]:
    "(line, what) for every line of a cell's source that breaks the rules."
    code, _ = set_aside(src)
    bad = [(i, f"{len(l)} characters") for i, l in enumerate(src.splitlines(), 1) if len(l) > MAX]
    bad += [(i, "`;`-chained statements") for i in semicolon_lines(code)]
    return sorted(bad)


# --- ruff on the offending statements only ---

def _own_ranges(tree_: ast.Module) -> list[tuple[int, int]]:
    "Per statement, the lines that are its own: a compound statement's header, a one-liner whole, a simple one whole."
    out = []
    for s in ast.walk(tree_):
        if not isinstance(s, ast.stmt): continue
        first = min([s.lineno] + [d.lineno for d in getattr(s, "decorator_list", [])])
        body = getattr(s, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.stmt) and body[0].lineno > s.lineno:
            out.append((first, body[0].lineno - 1))
        else: out.append((first, s.end_lineno))
    return out


def target_ranges(code: str, lines: list[int]) -> list[tuple[int, int]]:
    "Disjoint line ranges to format: for each line, the smallest statement part that holds it; last range first."
    own = _own_ranges(ast.parse(code))
    rs = []
    for ln in lines:
        holders = [r for r in own if r[0] <= ln <= r[1]]
        rs.append(min(holders, key=lambda r: (r[1] - r[0], -r[0])) if holders else (ln, ln))
    merged = []
    for a, b in sorted(set(rs)):
        if merged and a <= merged[-1][1]: merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else: merged.append((a, b))
    return merged[::-1]


def ruff_range(code: str, first: int, last: int) -> str:
    "`code` with lines first..last formatted by ruff (the rest untouched)."
    end = len(code.splitlines()[last - 1]) + 1
    cmd = [sys.executable, "-m", "ruff", "format", "--isolated", "--line-length", str(MAX), "--target-version", "py311",
           "--config", "format.quote-style='preserve'", "--range", f"{first}:1-{last}:{end}", "--stdin-filename",
           "cell.py", "-"]
    res = subprocess.run(cmd, input=code + "\n", capture_output=True, text=True)
    if res.returncode: return code
    old, new = code.splitlines(), res.stdout.rstrip("\n").splitlines()
    out = []  # ruff's new blank lines (between methods, after a docstring) go: the cell keeps its own spacing
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        seg, blanks = new[j1:j2], sum(not l.strip() for l in old[i1:i2])
        if tag in ("insert", "replace"):
            seg = [l for l in seg if l.strip() or (blanks := blanks - 1) >= 0]
        out += seg
    out = out if _same_tree(out, new) else new
    return "\n".join(out) if _same_tree(out, old) else code  # ruff strips a docstring's spaces: not here


def ruff_pass(code: str) -> str:
    lines = sorted(set(long_lines(code)) | set(semicolon_lines(code)))
    if not lines: return code
    for first, last in target_ranges(code, lines): code = ruff_range(code, first, last)
    return code


# --- what ruff leaves: long comments and long string literals ---

def _wrap_comment(text: str, indent: str) -> list[str]:
    lead = re.match(r"#+:?\s*", text)[0]
    lead = lead if lead.endswith(" ") else lead + " "
    body = text[len(re.match(r"#+:?\s*", text)[0]):]
    return textwrap.wrap(body, MAX - len(indent), initial_indent=indent + lead, subsequent_indent=indent + lead,
                         break_long_words=False, break_on_hyphens=False) or [indent + text]


def comment_pass(code: str) -> str:
    "Wrap comments on long lines; a trailing comment moves (wrapped) above its line when that makes the line fit."
    lines = code.splitlines()
    for t in reversed(_tokens(code)):
        row, col = t.start
        if t.type != tokenize.COMMENT or len(lines[row - 1]) <= MAX or KEPT.match(lines[row - 1]): continue
        line = lines[row - 1]
        before, indent = line[:col].rstrip(), line[:len(line) - len(line.lstrip())]
        if not before: lines[row - 1:row] = _wrap_comment(t.string, indent)
        elif len(before) <= MAX and not (row > 1 and lines[row - 2].rstrip().endswith("\\")):
            lines[row - 1:row] = _wrap_comment(t.string, indent) + [before]
    return "\n".join(lines)


def _split_points(body: str, fstring: bool) -> list[int]:
    "Offsets in a string literal's body just after a space where it may be cut (not inside an f-string's `{}`)."
    pts, depth, i = [], 0, 0
    while i < len(body):
        ch, step = body[i], 1
        if ch == "\\" or (fstring and body[i:i + 2] in ("{{", "}}")): step = 2  # an escape stays whole
        elif fstring and ch == "{": depth += 1
        elif fstring and ch == "}": depth -= 1
        elif ch == " " and depth == 0 and i + 1 < len(body): pts.append(i + 1)
        i += step
    return pts


def _split_string(tok: str, first_room: int, room: int) -> list[str] | None:
    "A one-line string literal as pieces (implicit concatenation): the first fits `first_room`, the others `room`."
    m = re.match(r"^([A-Za-z]*)('|\")(.*)\2$", tok, re.S)
    if not m or tok[len(m[1]):].startswith(('"""', "'''")): return None
    prefix, q, body = m.groups()
    pts = _split_points(body, "f" in prefix.lower())

    def greedy(first, other):
        pieces, start = [], 0
        while len(prefix) + len(body) - start + 2 > (other if pieces else first):
            fit = [p for p in pts if p > start and len(prefix) + p - start + 2 <= (other if pieces else first)]
            if not fit: return None
            pieces.append(f"{prefix}{q}{body[start:fit[-1]]}{q}")
            start = fit[-1]
        return pieces + [f"{prefix}{q}{body[start:]}{q}"]

    best = greedy(first_room, room)
    if best is None or len(best) < 2: return None
    for cut in range(1, min(first_room, room)):  # pieces of about equal length: the narrowest rooms that need no more
        even = greedy(first_room - cut, room - cut)
        if even is None or len(even) > len(best): break
        best = even
    return best


def string_pass(code: str) -> str:
    "Split string literals on long lines into pieces that fit (wrapped in parentheses where not inside brackets)."
    toks, lines = _tokens(code), code.splitlines()
    depth_at, depth = {}, 0
    for t in toks:
        if t.type == tokenize.OP and t.string in "([{": depth += 1
        elif t.type == tokenize.OP and t.string in ")]}": depth -= 1
        elif t.type == tokenize.STRING: depth_at[t.start] = depth
    for t in reversed(toks):
        row, col = t.start
        if t.type != tokenize.STRING or t.end[0] != row or len(lines[row - 1]) <= MAX: continue
        line = lines[row - 1]
        indent, tail = line[:len(line) - len(line.lstrip())], line[t.end[1]:]
        bare = depth_at[t.start] == 0
        head = line[:col] + ("(" if bare else "")
        own = not line[:col].strip()  # the literal starts its line: the pieces line up under it
        cont = " " * col if own and not bare else " " * len(head) if bare and len(head) <= 60 else indent + "    "
        pieces = _split_string(t.string, MAX - len(head), MAX - len(cont) - len(tail) - bare)
        if pieces is None: continue
        new = [head + pieces[0]] + [cont + p for p in pieces[1:]]
        new[-1] += (")" if bare else "") + tail
        lines[row - 1:row] = new
    return "\n".join(lines)


def _balanced(lines: list[str]) -> bool:
    "The lines hold whole bracketed expressions, no comment (ruff's one item of a list, maybe over several lines)."
    toks = _tokens("\n".join([lines[0].strip()] + lines[1:]))
    if not toks or any(t.type == tokenize.COMMENT for t in toks): return False
    depth = 0
    for t in toks:
        if t.type == tokenize.OP and t.string in "([{": depth += 1
        elif t.type == tokenize.OP and t.string in ")]}": depth -= 1
        if depth < 0: return False
    return depth == 0


def _same_tree(a: list, b: list) -> bool:
    try: return ast.dump(ast.parse("\n".join(a))) == ast.dump(ast.parse("\n".join(b)))
    except SyntaxError: return False


def _shift(line: str, by: int) -> str:
    "`line` moved right by `by` columns (left: only as far as its indentation goes)."
    return " " * by + line if by >= 0 else line[min(-by, len(line) - len(line.lstrip())):]


def _fill(head: str, items: list, close: str, aligned: bool) -> list[str]:
    "Items (each a list of lines) after `head` filled into lines: aligned under the bracket, or indented one step."
    indent = head[:len(head) - len(head.lstrip())]
    cont = " " * len(head) if aligned else indent + "    "
    out, cur = [], head if aligned else None
    for k, it in enumerate(items):
        first, rest = it[0].strip(), it[1:]
        sep = " " if k < len(items) - 1 else close
        if cur is not None and len((cur + first + (sep if not rest else "")).rstrip()) <= MAX:
            col, cur = len(cur), cur + first
        else:
            out += [cur.rstrip()] if cur is not None else []
            col, cur = len(cont), cont + first
        if rest:
            by = col - (len(it[0]) - len(it[0].lstrip()))
            out, cur = out + [cur] + [_shift(l, by) for l in rest[:-1]], _shift(rest[-1], by)
        cur += sep
    return ([] if aligned else [head]) + out + [cur]


def pack_pass(code: str, original: str) -> str:
    "Where ruff put one item per line (`f(\\n    a,\\n    b,\\n)`), fill the lines instead: the course's compact style."
    lines, seen = code.splitlines(), {l.strip() for l in original.splitlines()}
    for i in reversed(range(len(lines))):  # innermost brackets first, so an outer one can then be filled too
        head = lines[i].rstrip()
        indent = head[:len(head) - len(head.lstrip())]
        if head[-1:] not in ("(", "[", "{") or head.strip() in seen: continue
        items, j = [], i + 1
        while j < len(lines) and lines[j].startswith(indent + "    ") and not lines[j].startswith(indent + "     "):
            m = j + 1
            while m < len(lines) and lines[m].startswith(indent + "     "): m += 1
            if not _balanced(lines[j:m]): break
            items, j = items + [lines[j:m]], m
        if not items or j >= len(lines) or not lines[j].startswith(indent) or lines[j].strip()[:1] not in ")]}":
            continue
        items[-1] = items[-1][:-1] + [items[-1][-1].rstrip().rstrip(",")]
        for aligned in ([True, False] if len(head) <= 60 else [False]):
            out = _fill(head, items, lines[j].strip(), aligned)
            new = lines[:i] + out + lines[j + 1:]
            if all(len(l) <= MAX for l in out) and len(out) < j + 1 - i and _same_tree(lines, new):
                lines = new
                break
    return "\n".join(lines)


def fix_cell(src: str) -> tuple[str, str | None]:
    "(new source, None) or (the source unchanged, why it was left) for one code cell."
    if not offenders(src): return src, None
    before = tree(src)
    if before is None: return src, "does not parse (left as it is)"
    code, kept = set_aside(src)
    original = code
    for _ in range(3):
        code = pack_pass(string_pass(ruff_pass(comment_pass(code))), original)
        if not long_lines(code) and not semicolon_lines(code): break
    new = put_back(code, kept)
    if tree(new) != before: return src, "formatting would change its syntax tree (left as it is)"
    left = offenders(new)
    if not left: return new, None
    return new, f"still {len(left)} offending line(s): " + ", ".join(f"line {i} {w}" for i, w in left)


def fix_notebook(path: Path, write: bool = True) -> list[str]:
    "Fix every code cell of a notebook in place (cell ids, outputs and order kept); returns what is left to report."
    nb = json.loads(path.read_text())
    notes, changed = [], False
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] != "code": continue
        old = cell_src(c)
        new, why = fix_cell(old)
        if why: notes.append(f"{path}: cell {i}: {why}")
        if new != old:
            c["source"], changed = new.splitlines(keepends=True), True
    if changed and write:
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f: f.write(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    return notes


def check(paths: list[Path], lengths: bool = False) -> int:
    "Print every offender; returns how many there are."
    n = 0
    for p in paths:
        for i, c in enumerate(json.loads(p.read_text())["cells"]):
            if c["cell_type"] != "code": continue
            src = cell_src(c)
            for line, what in offenders(src):
                print(f"{p}: cell {i} line {line}: {what}")
                n += 1
            if lengths and len(src.splitlines()) > LONG_CELL:
                print(f"{p}: cell {i}: {len(src.splitlines())} lines (aim for 25; not enforced)")
    return n


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="*", type=Path, help="default: every nbs/*.ipynb")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 listing lines over 120 and `;` chains")
    p.add_argument("--lengths", action="store_true", help="also list code cells over 30 lines")
    a = p.parse_args(argv)
    paths = a.notebooks or sorted(Path("nbs").glob("*.ipynb"))
    if missing := [str(x) for x in paths if not x.exists()]: sys.exit(f"nbfmt: no such notebook: {', '.join(missing)}")
    if a.check:
        n = check(paths, a.lengths)
        if n: print(f"nbfmt: {n} line(s) over {MAX} characters or with `;` chains; fix them: python tools/nbfmt.py")
        sys.exit(1 if n else 0)
    if importlib.util.find_spec("ruff") is None:
        sys.exit("nbfmt: ruff is not installed; install it with: pip install -c constraints.txt ruff")
    for path in paths:
        for note in fix_notebook(path): print(note)
    if a.lengths: check(paths, True)


if __name__ == "__main__": main()
