//! Static extraction of the imports in a Python source file.
//!
//! A small tokenizer (comments, every string form including nested 3.12
//! f-strings, line continuations, brackets) feeds a statement scanner that
//! finds `import`/`from` statements anywhere (functions, `try`, `if
//! TYPE_CHECKING:` — everything, on purpose: over-approximation is safe),
//! literal dynamic imports (`importlib.import_module`, `__import__`) and
//! `pytest_plugins`. It never panics and never loops on malformed input.

/// One import found in a source file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImportRef {
    /// Dotted module name; empty for `from . import x`.
    pub module: String,
    /// Number of leading dots (0 for absolute imports).
    pub level: u32,
    /// Names of a from-import (`["*"]` for a star import); empty otherwise.
    pub names: Vec<String>,
    /// 1-based line of the statement.
    pub line: u32,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind<'a> {
    Name(&'a str),
    /// A string literal; its value when it is a plain (non-f, non-bytes) literal.
    Str(Option<String>),
    Op(u8),
    Newline,
    Other,
}

#[derive(Debug, Clone)]
struct Tok<'a> {
    kind: Kind<'a>,
    line: u32,
    /// Bracket depth before this token.
    depth: u32,
}

/// Nesting limit for f-strings inside f-strings; deeper input is scanned flat.
const MAX_FSTRING_NESTING: u32 = 32;

struct Lexer<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    line: u32,
    depth: u32,
    toks: Vec<Tok<'a>>,
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// Flags of a string prefix such as `rb` or `F`.
#[derive(Debug, Clone, Copy, Default)]
struct Prefix {
    fstring: bool,
    bytes: bool,
    raw: bool,
}

/// Whether `p` (a run of identifier bytes) is a valid string prefix.
fn string_prefix(p: &[u8]) -> Option<Prefix> {
    if p.len() > 2 {
        return None;
    }
    let (mut f, mut b, mut r, mut u) = (false, false, false, false);
    for &c in p {
        let flag = match c.to_ascii_lowercase() {
            b'f' | b't' => &mut f,
            b'b' => &mut b,
            b'r' => &mut r,
            b'u' => &mut u,
            _ => return None,
        };
        if *flag {
            return None;
        }
        *flag = true;
    }
    if u && p.len() > 1 || f && b {
        return None;
    }
    Some(Prefix {
        fstring: f,
        bytes: b,
        raw: r,
    })
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Lexer {
            src,
            b: src.as_bytes(),
            pos: 0,
            line: 1,
            depth: 0,
            toks: Vec::new(),
        }
    }

    fn peek(&self, off: usize) -> u8 {
        self.b.get(self.pos + off).copied().unwrap_or(0)
    }

    fn push(&mut self, kind: Kind<'a>, line: u32) {
        self.toks.push(Tok {
            kind,
            line,
            depth: self.depth,
        });
    }

    fn run(mut self) -> Vec<Tok<'a>> {
        while self.pos < self.b.len() {
            let c = self.b[self.pos];
            let line = self.line;
            match c {
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                    if self.depth == 0
                        && !matches!(
                            self.toks.last(),
                            Some(Tok {
                                kind: Kind::Newline,
                                ..
                            }) | None
                        )
                    {
                        self.push(Kind::Newline, line);
                    }
                }
                b' ' | b'\t' | b'\r' | b'\x0c' => self.pos += 1,
                b'#' => self.skip_comment(),
                b'\\' => {
                    // Line continuation (or a stray backslash).
                    self.pos += 1;
                    if self.peek(0) == b'\r' {
                        self.pos += 1;
                    }
                    if self.peek(0) == b'\n' {
                        self.pos += 1;
                        self.line += 1;
                    }
                }
                b'\'' | b'"' => {
                    let v = self.string(Prefix::default(), 0);
                    self.push(Kind::Str(v), line);
                }
                c if is_ident_start(c) => {
                    let start = self.pos;
                    while self.pos < self.b.len() && is_ident_char(self.b[self.pos]) {
                        self.pos += 1;
                    }
                    let word = &self.b[start..self.pos];
                    let q = self.peek(0);
                    if q == b'\'' || q == b'"' {
                        if let Some(prefix) = string_prefix(word) {
                            let v = self.string(prefix, 0);
                            self.push(Kind::Str(v), line);
                            continue;
                        }
                    }
                    // Identifier runs start and end on char boundaries (all
                    // non-ASCII bytes are identifier bytes).
                    let name = self.src.get(start..self.pos).unwrap_or("");
                    self.push(Kind::Name(name), line);
                }
                c if c.is_ascii_digit() => {
                    while self.pos < self.b.len()
                        && (self.b[self.pos].is_ascii_alphanumeric()
                            || matches!(self.b[self.pos], b'_' | b'.'))
                    {
                        self.pos += 1;
                    }
                    self.push(Kind::Other, line);
                }
                b'(' | b'[' | b'{' => {
                    self.push(Kind::Op(c), line);
                    self.depth += 1;
                    self.pos += 1;
                }
                b')' | b']' | b'}' => {
                    self.depth = self.depth.saturating_sub(1);
                    self.push(Kind::Op(c), line);
                    self.pos += 1;
                }
                c if c.is_ascii_punctuation() => {
                    self.push(Kind::Op(c), line);
                    self.pos += 1;
                }
                _ => {
                    self.pos += 1;
                    self.push(Kind::Other, line);
                }
            }
        }
        self.toks
    }

    fn skip_comment(&mut self) {
        while self.pos < self.b.len() && self.b[self.pos] != b'\n' {
            self.pos += 1;
        }
    }

    /// Scans a string literal starting at the opening quote; returns its value
    /// when it is a plain literal without escapes.
    fn string(&mut self, prefix: Prefix, nesting: u32) -> Option<String> {
        let fstring = prefix.fstring && nesting < MAX_FSTRING_NESTING;
        let q = self.b[self.pos];
        let triple = self.peek(1) == q && self.peek(2) == q;
        let qlen = if triple { 3 } else { 1 };
        self.pos += qlen;
        let content_start = self.pos;
        let mut simple = !prefix.fstring && !prefix.bytes;
        loop {
            let Some(&c) = self.b.get(self.pos) else {
                return None; // unterminated at end of input
            };
            match c {
                b'\\' => {
                    simple = false;
                    self.pos += 1;
                    match self.peek(0) {
                        // `\N{NAME}` is an escape, not a replacement field.
                        b'N' if fstring && !prefix.raw && self.peek(1) == b'{' => {
                            while self.pos < self.b.len()
                                && !matches!(self.b[self.pos], b'}' | b'\n')
                            {
                                self.pos += 1;
                            }
                        }
                        // `\{` still opens a field in an f-string.
                        b'{' if fstring => {}
                        b'\n' => {
                            self.line += 1;
                            self.pos += 1;
                        }
                        _ if self.pos < self.b.len() => self.pos += 1,
                        _ => {}
                    }
                }
                b'\n' => {
                    if !triple {
                        // Unterminated single-quoted string: stop at the line end.
                        return None;
                    }
                    self.line += 1;
                    self.pos += 1;
                }
                _ if c == q && (!triple || (self.peek(1) == q && self.peek(2) == q)) => {
                    let end = self.pos;
                    self.pos += qlen;
                    return if simple {
                        self.src.get(content_start..end).map(str::to_owned)
                    } else {
                        None
                    };
                }
                b'{' if fstring => {
                    if self.peek(1) == b'{' {
                        self.pos += 2;
                    } else {
                        self.pos += 1;
                        self.replacement_field(q, triple, nesting);
                    }
                }
                _ => self.pos += 1,
            }
        }
    }

    /// Whether the closing quote of the enclosing string starts at `pos`.
    fn at_closing(&self, q: u8, triple: bool) -> bool {
        self.peek(0) == q && (!triple || (self.peek(1) == q && self.peek(2) == q))
    }

    /// Scans an f-string replacement field after its `{`, up to and including
    /// the matching `}`. Stops (without consuming) at the enclosing closing
    /// quote when the field is malformed, so the string still terminates.
    fn replacement_field(&mut self, q: u8, triple: bool, nesting: u32) {
        let mut depth = 0u32;
        let mut in_spec = false;
        while let Some(&c) = self.b.get(self.pos) {
            if in_spec {
                match c {
                    b'{' => {
                        self.pos += 1;
                        self.replacement_field(q, triple, nesting + 1);
                    }
                    b'}' => {
                        self.pos += 1;
                        return;
                    }
                    b'\n' if !triple => return,
                    b'\n' => {
                        self.line += 1;
                        self.pos += 1;
                    }
                    _ if self.at_closing(q, triple) => return,
                    _ => self.pos += 1,
                }
                continue;
            }
            match c {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b'#' => self.skip_comment(),
                b'(' | b'[' | b'{' => {
                    depth += 1;
                    self.pos += 1;
                }
                b')' | b']' => {
                    depth = depth.saturating_sub(1);
                    self.pos += 1;
                }
                b'}' => {
                    self.pos += 1;
                    if depth == 0 {
                        return;
                    }
                    depth -= 1;
                }
                b':' if depth == 0 => {
                    in_spec = true;
                    self.pos += 1;
                }
                b'!' if depth == 0 && self.peek(1) != b'=' => self.pos += 1,
                b'\'' | b'"' => {
                    if nesting >= MAX_FSTRING_NESTING
                        || (self.at_closing(q, triple) && !self.nested_quote_ok(q))
                    {
                        return;
                    }
                    self.string(Prefix::default(), nesting + 1);
                }
                c if is_ident_start(c) => {
                    let start = self.pos;
                    while self.pos < self.b.len() && is_ident_char(self.b[self.pos]) {
                        self.pos += 1;
                    }
                    let qc = self.peek(0);
                    if (qc == b'\'' || qc == b'"') && nesting < MAX_FSTRING_NESTING {
                        if let Some(prefix) = string_prefix(&self.b[start..self.pos]) {
                            self.string(prefix, nesting + 1);
                        }
                    }
                }
                _ => self.pos += 1,
            }
        }
    }

    /// A quote equal to the enclosing one inside a replacement field is a
    /// nested string (3.12) only when that string closes on the same line
    /// before the field does; otherwise it ends the enclosing string.
    fn nested_quote_ok(&self, q: u8) -> bool {
        let rest = &self.b[self.pos + 1..];
        for &c in rest {
            match c {
                b'\n' => return false,
                _ if c == q => return true,
                _ => {}
            }
        }
        false
    }
}

/// Splits `.sub` against a literal package name: `(".sub", "a.b")` → `a.b.sub`.
fn resolve_literal_relative(name: &str, package: &str) -> Option<String> {
    let level = name.bytes().take_while(|&c| c == b'.').count();
    let rest = &name[level..];
    let mut parts: Vec<&str> = package.split('.').filter(|p| !p.is_empty()).collect();
    if level == 0 || parts.len() < level {
        return None;
    }
    parts.truncate(parts.len() + 1 - level);
    let mut out = parts.join(".");
    if !rest.is_empty() {
        out.push('.');
        out.push_str(rest);
    }
    Some(out)
}

fn is_module_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|p| {
            !p.is_empty()
                && p.bytes().next().is_some_and(is_ident_start)
                && p.bytes().all(is_ident_char)
        })
}

struct Parser<'t, 'a> {
    toks: &'t [Tok<'a>],
    out: Vec<ImportRef>,
}

impl<'t, 'a> Parser<'t, 'a> {
    fn kind(&self, i: usize) -> Option<&'t Kind<'a>> {
        self.toks.get(i).map(|t| &t.kind)
    }

    fn is_op(&self, i: usize, c: u8) -> bool {
        self.kind(i) == Some(&Kind::Op(c))
    }

    fn name(&self, i: usize) -> Option<&'a str> {
        match self.kind(i) {
            Some(Kind::Name(n)) => Some(n),
            _ => None,
        }
    }

    fn str_lit(&self, i: usize) -> Option<&'t str> {
        match self.kind(i) {
            Some(Kind::Str(Some(s))) => Some(s.as_str()),
            _ => None,
        }
    }

    fn stmt_start(&self, i: usize) -> bool {
        if i == 0 {
            return true;
        }
        let prev = &self.toks[i - 1];
        match prev.kind {
            Kind::Newline => true,
            Kind::Op(b';') | Kind::Op(b':') => prev.depth == 0,
            _ => false,
        }
    }

    /// Parses `a.b.c` at `i`; returns the name and the next index.
    fn dotted(&self, mut i: usize) -> (String, usize) {
        let mut s = String::new();
        while let Some(n) = self.name(i) {
            if n == "import" {
                break;
            }
            s.push_str(n);
            i += 1;
            if self.is_op(i, b'.') && self.name(i + 1).is_some_and(|n| n != "import") {
                s.push('.');
                i += 1;
            } else {
                break;
            }
        }
        (s, i)
    }

    fn run(mut self) -> Vec<ImportRef> {
        let mut i = 0;
        while i < self.toks.len() {
            let line = self.toks[i].line;
            match self.toks[i].kind {
                Kind::Name("import") if self.stmt_start(i) => i = self.import_stmt(i + 1, line),
                Kind::Name("from") if self.stmt_start(i) => i = self.parse_from_import(i + 1, line),
                Kind::Name("pytest_plugins") if self.stmt_start(i) => {
                    i = self.pytest_plugins(i + 1, line)
                }
                Kind::Name("import_module") | Kind::Name("__import__")
                    if self.is_op(i + 1, b'(') =>
                {
                    self.dynamic(i + 2, line);
                    i += 1;
                }
                _ => i += 1,
            }
        }
        self.out
    }

    fn import_stmt(&mut self, mut i: usize, line: u32) -> usize {
        loop {
            let (m, next) = self.dotted(i);
            if m.is_empty() {
                return i;
            }
            self.out.push(ImportRef {
                module: m,
                level: 0,
                names: Vec::new(),
                line,
            });
            i = next;
            if self.name(i) == Some("as") && self.name(i + 1).is_some() {
                i += 2;
            }
            if self.is_op(i, b',') {
                i += 1;
            } else {
                return i;
            }
        }
    }

    fn parse_from_import(&mut self, mut i: usize, line: u32) -> usize {
        let mut level = 0u32;
        while self.is_op(i, b'.') {
            level += 1;
            i += 1;
        }
        let (module, next) = self.dotted(i);
        i = next;
        if self.name(i) != Some("import") || (module.is_empty() && level == 0) {
            return i;
        }
        i += 1;
        let mut names = Vec::new();
        if self.is_op(i, b'*') {
            names.push("*".to_owned());
            i += 1;
        } else {
            let paren = self.is_op(i, b'(');
            if paren {
                i += 1;
            }
            while let Some(n) = self.name(i) {
                names.push(n.to_owned());
                i += 1;
                if self.name(i) == Some("as") && self.name(i + 1).is_some() {
                    i += 2;
                }
                if self.is_op(i, b',') {
                    i += 1;
                } else {
                    break;
                }
            }
            if paren && self.is_op(i, b')') {
                i += 1;
            }
        }
        self.out.push(ImportRef {
            module,
            level,
            names,
            line,
        });
        i
    }

    fn pytest_plugins(&mut self, mut i: usize, line: u32) -> usize {
        // Optional annotation: `pytest_plugins: list[str] = [...]`.
        if self.is_op(i, b':') {
            while let Some(t) = self.toks.get(i) {
                if matches!(t.kind, Kind::Newline) || (t.kind == Kind::Op(b'=') && t.depth == 0) {
                    break;
                }
                i += 1;
            }
        }
        if self.is_op(i, b'+') {
            i += 1;
        }
        if !self.is_op(i, b'=') || self.is_op(i + 1, b'=') {
            return i;
        }
        i += 1;
        let push = |s: &str, out: &mut Vec<ImportRef>| {
            if is_module_name(s) {
                out.push(ImportRef {
                    module: s.to_owned(),
                    level: 0,
                    names: Vec::new(),
                    line,
                });
            }
        };
        if let Some(s) = self.str_lit(i) {
            push(s, &mut self.out);
            return i + 1;
        }
        if !(self.is_op(i, b'[') || self.is_op(i, b'(')) {
            return i;
        }
        let depth = self.toks[i].depth;
        i += 1;
        while let Some(t) = self.toks.get(i) {
            if t.depth <= depth {
                break;
            }
            if let Kind::Str(Some(s)) = &t.kind {
                push(s, &mut self.out);
            }
            i += 1;
        }
        i
    }

    /// `import_module("x", "pkg")`, `import_module(".x", package="pkg")`,
    /// `__import__("x")`; `i` is the first argument.
    fn dynamic(&mut self, i: usize, line: u32) {
        let Some(name) = self.str_lit(i) else { return };
        let name = name.to_owned();
        let level = name.bytes().take_while(|&c| c == b'.').count();
        if level == 0 {
            if is_module_name(&name) {
                self.out.push(ImportRef {
                    module: name,
                    level: 0,
                    names: Vec::new(),
                    line,
                });
            }
            return;
        }
        let rest = &name[level..];
        if !(rest.is_empty() || is_module_name(rest)) {
            return;
        }
        let mut j = i + 1;
        let mut package = None;
        if self.is_op(j, b',') {
            j += 1;
            if self.name(j) == Some("package") && self.is_op(j + 1, b'=') {
                j += 2;
            }
            package = self.str_lit(j);
        }
        match package.and_then(|p| resolve_literal_relative(&name, p)) {
            Some(m) if is_module_name(&m) => self.out.push(ImportRef {
                module: m,
                level: 0,
                names: Vec::new(),
                line,
            }),
            Some(_) => {}
            // A non-literal package (usually `__package__` or `__name__`):
            // resolve relative to the importer's own package.
            None => self.out.push(ImportRef {
                module: rest.to_owned(),
                level: level as u32,
                names: Vec::new(),
                line,
            }),
        }
    }
}

/// Every import in `src`, in source order.
pub fn parse_imports(src: &str) -> Vec<ImportRef> {
    let toks = Lexer::new(src).run();
    Parser {
        toks: &toks,
        out: Vec::new(),
    }
    .run()
}

/// The imports in the interactive examples (`>>> ` and `... ` lines) of a
/// doctest, wherever they are: a docstring, a text file. A doctest's
/// `from pkg import x` of a module the session already loaded raises no
/// import event, so only the source says the example depends on it.
/// Line numbers are those of the prompts.
pub fn parse_doctest_imports(src: &str) -> Vec<ImportRef> {
    let mut out = Vec::new();
    if !src.contains(">>>") {
        return out;
    }
    // One example at a time: its `>>>` line and the `...` lines after it.
    let mut code = String::new();
    let mut lines: Vec<u32> = Vec::new();
    let flush = |code: &mut String, lines: &mut Vec<u32>, out: &mut Vec<ImportRef>| {
        if !code.is_empty() {
            for mut r in parse_imports(code) {
                r.line = lines
                    .get(r.line.saturating_sub(1) as usize)
                    .copied()
                    .unwrap_or(r.line);
                out.push(r);
            }
        }
        code.clear();
        lines.clear();
    };
    for (i, line) in src.lines().enumerate() {
        let t = line.trim_start();
        let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
        if let Some(rest) = t.strip_prefix(">>>") {
            flush(&mut code, &mut lines, &mut out);
            code.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            code.push('\n');
            lines.push(n);
        } else if let (Some(rest), false) = (t.strip_prefix("..."), code.is_empty()) {
            code.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            code.push('\n');
            lines.push(n);
        } else {
            flush(&mut code, &mut lines, &mut out);
        }
    }
    flush(&mut code, &mut lines, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doctest_examples_are_parsed() {
        let src = "def f():\n    \"\"\"\n    >>> from pkg.core import square\n    >>> import a, \\\n    ...     b\n    >>> x = 1\n    \"\"\"\n";
        let got: Vec<(String, u32)> = parse_doctest_imports(src)
            .into_iter()
            .map(|r| (r.module, r.line))
            .collect();
        assert_eq!(
            got,
            [
                ("pkg.core".to_owned(), 3),
                ("a".to_owned(), 4),
                ("b".to_owned(), 4)
            ]
        );
        let text = "Some prose.\n\n>>> from mathlib.core import square\n>>> square(5)\n25\n";
        assert_eq!(parse_doctest_imports(text)[0].module, "mathlib.core");
        assert!(parse_doctest_imports("no examples here\nimport os\n").is_empty());
    }

    fn imp(module: &str, level: u32, names: &[&str], line: u32) -> ImportRef {
        ImportRef {
            module: module.into(),
            level,
            names: names.iter().map(|s| s.to_string()).collect(),
            line,
        }
    }

    fn mods(src: &str) -> Vec<(String, u32, Vec<String>)> {
        parse_imports(src)
            .into_iter()
            .map(|r| (r.module, r.level, r.names))
            .collect()
    }

    fn m(module: &str, level: u32, names: &[&str]) -> (String, u32, Vec<String>) {
        (
            module.into(),
            level,
            names.iter().map(|s| s.to_string()).collect(),
        )
    }

    #[test]
    fn plain_imports() {
        let src = "import os\nimport a.b as c, d\nimport  x . y\n";
        assert_eq!(
            parse_imports(src),
            vec![
                imp("os", 0, &[], 1),
                imp("a.b", 0, &[], 2),
                imp("d", 0, &[], 2),
                imp("x.y", 0, &[], 3)
            ]
        );
    }

    #[test]
    fn from_imports_all_shapes() {
        let src = "from a.b import c\n\
                   from . import x\n\
                   from .. import y as z\n\
                   from ...pkg.mod import *\n\
                   from .m import (\n    a,\n    b as c,  # comment\n)\n\
                   from q import r, \\\n    s\n";
        assert_eq!(
            parse_imports(src),
            vec![
                imp("a.b", 0, &["c"], 1),
                imp("", 1, &["x"], 2),
                imp("", 2, &["y"], 3),
                imp("pkg.mod", 3, &["*"], 4),
                imp("m", 1, &["a", "b"], 5),
                imp("q", 0, &["r", "s"], 9),
            ]
        );
    }

    #[test]
    fn imports_anywhere_in_compound_statements() {
        let src = "\
try:
    import fast
except ImportError:
    import slow
if TYPE_CHECKING:
    from typing_only import T
def f():
    import inner; from x import y
class C: import incls
if x: from a import b
";
        assert_eq!(
            mods(src),
            vec![
                m("fast", 0, &[]),
                m("slow", 0, &[]),
                m("typing_only", 0, &["T"]),
                m("inner", 0, &[]),
                m("x", 0, &["y"]),
                m("incls", 0, &[]),
                m("a", 0, &["b"]),
            ]
        );
    }

    #[test]
    fn not_fooled_by_strings_comments_and_other_froms() {
        let src = r#"
# import commented
s = "import fake"
t = '''
import in_triple
'''
u = r'\' import x'
v = b"from y import z"
w = f"{x!r:>{width}} import nope {'a' + "b"}"
def g():
    yield from gen()
    raise E from err
x = f"{d["key"]}" ; import after_fstring
y = rb'''multi
line''' ; import after_bytes
"""
from doc import string
"""
import real
"#;
        assert_eq!(
            mods(src),
            vec![
                m("after_fstring", 0, &[]),
                m("after_bytes", 0, &[]),
                m("real", 0, &[])
            ]
        );
    }

    #[test]
    fn nested_fstrings_and_format_specs() {
        let src = "x = f'{a:{b}.{c}f}' f\"{f'{1}'}\" F'''{\n  y # comment\n}'''\nimport ok\n";
        assert_eq!(mods(src), vec![m("ok", 0, &[])]);
        let src = "x = f'{\"a\" if b else \"}\"}'\nimport ok2\n";
        assert_eq!(mods(src), vec![m("ok2", 0, &[])]);
    }

    #[test]
    fn dynamic_imports() {
        let src = r#"
import importlib
m = importlib.import_module("x.y")
n = import_module('.sub', 'pkg.inner')
o = importlib.import_module("..up", package="pkg.inner")
p = __import__("z")
q = importlib.import_module(".rel", __package__)
r = importlib.import_module(name)  # not literal
s = importlib.import_module(f"x{1}")  # not literal
"#;
        assert_eq!(
            mods(src),
            vec![
                m("importlib", 0, &[]),
                m("x.y", 0, &[]),
                m("pkg.inner.sub", 0, &[]),
                m("pkg.up", 0, &[]),
                m("z", 0, &[]),
                m("rel", 1, &[]),
            ]
        );
    }

    #[test]
    fn pytest_plugins_forms() {
        assert_eq!(
            mods("pytest_plugins = ['a.b', \"c\",\n 'd']\n"),
            vec![m("a.b", 0, &[]), m("c", 0, &[]), m("d", 0, &[])]
        );
        assert_eq!(mods("pytest_plugins = \"a.b\"\n"), vec![m("a.b", 0, &[])]);
        assert_eq!(mods("pytest_plugins = ('x',)\n"), vec![m("x", 0, &[])]);
        assert_eq!(
            mods("pytest_plugins: list[str] = ['y']\n"),
            vec![m("y", 0, &[])]
        );
        assert_eq!(
            mods("pytest_plugins == ['no']\nx.pytest_plugins = ['no']\n"),
            vec![]
        );
    }

    #[test]
    fn line_numbers_count_strings_and_continuations() {
        let src = "a = '''\n\n'''\nb = 1 + \\\n  2\nimport z\n";
        assert_eq!(parse_imports(src), vec![imp("z", 0, &[], 6)]);
    }

    #[test]
    fn unterminated_and_garbage_never_panic() {
        let cases = [
            "",
            "'",
            "\"\"\"",
            "f'{",
            "f'{'",
            "f\"{x:{",
            "import",
            "from",
            "from .",
            "from . import",
            "from . import (",
            "import a.",
            "import a as",
            "\\",
            "(((((",
            ")))))",
            "f'{}}}}'",
            "\u{feff}import x",
            "import é.ü",
            "f'{f'{f'{f'{",
            "b'\\",
            "rb'''",
            "import_module(",
            "__import__(1)",
            "pytest_plugins = [",
            "pytest_plugins =",
            "x = 1 if y else z; from",
        ];
        for c in cases {
            let _ = parse_imports(c);
        }
        let mut seed = 0x2545F4914F6CDD1Du64;
        let alphabet = b"'\"\\{}()[]:;#\nfrom import rbf.,=*_a1 \t\r";
        for _ in 0..3000 {
            let len = (seed % 80) as usize;
            let mut s = String::new();
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push(alphabet[(seed % alphabet.len() as u64) as usize] as char);
            }
            let _ = parse_imports(&s);
        }
        let deep = "f'{".repeat(5000);
        let _ = parse_imports(&deep);
    }

    #[test]
    fn unterminated_string_stops_at_line_end() {
        assert_eq!(mods("x = 'oops\nimport y\n"), vec![m("y", 0, &[])]);
        assert_eq!(
            mods("import a.b as \\\n c, d\n"),
            vec![m("a.b", 0, &[]), m("d", 0, &[])]
        );
    }

    #[test]
    fn literal_relative_resolution() {
        assert_eq!(
            resolve_literal_relative(".x", "a.b").as_deref(),
            Some("a.b.x")
        );
        assert_eq!(
            resolve_literal_relative("..x", "a.b").as_deref(),
            Some("a.x")
        );
        assert_eq!(resolve_literal_relative("..", "a.b").as_deref(), Some("a"));
        assert_eq!(resolve_literal_relative("...x", "a.b"), None);
    }
}
