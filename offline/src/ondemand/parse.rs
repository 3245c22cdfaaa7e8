//! A parser for the subset of Python an on-demand view's UDF is compiled from: the function
//! definition (decorators skipped), assignments, `return`, imports, docstrings and `pass`, and
//! expressions with Python's precedence (literals, names, attributes, subscripts, calls with
//! keyword arguments, arithmetic, comparisons, `&`/`|`/`^`/`~`, dicts, lists and tuples).
//! Anything else is an [`Unsupported`] naming what was met, so the view runs on the Python
//! engine instead.

use std::fmt;

/// Why a UDF is outside the native subset (the view then needs the Python engine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn unsupported<T>(what: impl Into<String>) -> Result<T, Unsupported> {
    Err(Unsupported(what.into()))
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    None,
    Name(String),
    Attr(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
    Call {
        func: Box<Expr>,
        args: Vec<Expr>,
        kwargs: Vec<(String, Expr)>,
    },
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    Dict(Vec<(Expr, Expr)>),
    List(Vec<Expr>),
    Tuple(Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
    BitAnd,
    BitOr,
    BitXor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Pos,
    Invert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Name(String),
    /// `name[key] = …`
    Item(String, Expr),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    Assign(Target, Expr),
    Return(Expr),
}

/// A parsed `def`.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    pub name: String,
    pub params: Vec<String>,
    pub body: Vec<Stmt>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Int(i64),
    Float(f64),
    Str(String),
    Op(&'static str),
}

/// One logical line: its indentation and tokens.
struct Line {
    indent: usize,
    toks: Vec<Tok>,
}

const OPS: [&str; 38] = [
    "**=", "//=", "->", "**", "//", "<=", ">=", "==", "!=", "+=", "-=", "*=", "/=", "%=", "&=",
    "|=", ":=", "+", "-", "*", "/", "%", "<", ">", "=", "(", ")", "[", "]", "{", "}", ",", ":",
    ".", "&", "|", "^", "~",
];
const MORE_OPS: [&str; 2] = ["@", ";"];

/// Splits source text into logical lines (brackets and backslashes join physical lines;
/// comments dropped).
fn lines(src: &str) -> Result<Vec<Line>, Unsupported> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut depth = 0usize;
    let mut cur: Vec<Tok> = Vec::new();
    let mut indent = 0usize;
    let mut at_line_start = true;
    while i < b.len() {
        if at_line_start && depth == 0 {
            let mut w = 0;
            while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
                w += if b[i] == b'\t' { 8 - w % 8 } else { 1 };
                i += 1;
            }
            indent = w;
            at_line_start = false;
            continue;
        }
        let c = b[i];
        match c {
            b'\n' => {
                i += 1;
                if depth == 0 {
                    if !cur.is_empty() {
                        out.push(Line {
                            indent,
                            toks: std::mem::take(&mut cur),
                        });
                    }
                    at_line_start = true;
                }
            }
            b' ' | b'\t' | b'\r' | b'\x0c' => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'\\' if b.get(i + 1) == Some(&b'\n') => i += 2,
            b'0'..=b'9' => {
                let (t, n) = number(&src[i..])?;
                cur.push(t);
                i += n;
            }
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let (t, n) = number(&src[i..])?;
                cur.push(t);
                i += n;
            }
            b'"' | b'\'' => {
                let (s, n) = string(&src[i..], false)?;
                cur.push(Tok::Str(s));
                i += n;
            }
            _ if c == b'_' || c.is_ascii_alphabetic() || c >= 0x80 => {
                let start = i;
                while i < b.len() && (b[i] == b'_' || b[i].is_ascii_alphanumeric() || b[i] >= 0x80)
                {
                    i += 1;
                }
                let word = &src[start..i];
                if matches!(b.get(i), Some(b'"' | b'\'')) {
                    let prefix = word.to_ascii_lowercase();
                    match prefix.as_str() {
                        "r" | "u" => {
                            let (s, n) = string(&src[i..], prefix == "r")?;
                            cur.push(Tok::Str(s));
                            i += n;
                            continue;
                        }
                        _ => return unsupported(format!("{word}-prefixed string literals")),
                    }
                }
                cur.push(Tok::Name(word.to_owned()));
            }
            _ => {
                let rest = &src[i..];
                let Some(op) = OPS
                    .iter()
                    .chain(MORE_OPS.iter())
                    .find(|op| rest.starts_with(**op))
                else {
                    return unsupported(format!(
                        "the character {:?}",
                        rest.chars().next().unwrap_or(' ')
                    ));
                };
                match *op {
                    "(" | "[" | "{" => depth += 1,
                    ")" | "]" | "}" => depth = depth.saturating_sub(1),
                    _ => {}
                }
                cur.push(Tok::Op(op));
                i += op.len();
            }
        }
    }
    if !cur.is_empty() {
        out.push(Line { indent, toks: cur });
    }
    Ok(out)
}

fn number(s: &str) -> Result<(Tok, usize), Unsupported> {
    let b = s.as_bytes();
    if s.starts_with("0x") || s.starts_with("0X") || s.starts_with("0o") || s.starts_with("0b") {
        let radix = match b[1] {
            b'x' | b'X' => 16,
            b'o' | b'O' => 8,
            _ => 2,
        };
        let mut n = 2;
        while n < b.len() && (b[n].is_ascii_alphanumeric() || b[n] == b'_') {
            n += 1;
        }
        let digits: String = s[2..n].chars().filter(|c| *c != '_').collect();
        return i64::from_str_radix(&digits, radix)
            .map(|v| (Tok::Int(v), n))
            .map_err(|_| Unsupported(format!("the number {}", &s[..n])));
    }
    let mut n = 0;
    let mut float = false;
    while n < b.len() {
        match b[n] {
            b'0'..=b'9' | b'_' => n += 1,
            b'.' if !float => {
                float = true;
                n += 1;
            }
            b'e' | b'E' => {
                float = true;
                n += 1;
                if matches!(b.get(n), Some(b'+' | b'-')) {
                    n += 1;
                }
            }
            _ => break,
        }
    }
    if matches!(b.get(n), Some(b'j' | b'J')) {
        return unsupported("complex numbers");
    }
    let text: String = s[..n].chars().filter(|c| *c != '_').collect();
    if float {
        text.parse::<f64>()
            .map(|v| (Tok::Float(v), n))
            .map_err(|_| Unsupported(format!("the number {}", &s[..n])))
    } else {
        text.parse::<i64>()
            .map(|v| (Tok::Int(v), n))
            .map_err(|_| Unsupported(format!("the integer {} (beyond int64)", &s[..n])))
    }
}

/// A string literal at the start of `s` (quote included): its value and length.
fn string(s: &str, raw: bool) -> Result<(String, usize), Unsupported> {
    let q = s.as_bytes()[0] as char;
    let triple: String = std::iter::repeat_n(q, 3).collect();
    let (delim, mut i) = if s.starts_with(&triple) {
        (triple, 3)
    } else {
        (q.to_string(), 1)
    };
    let mut out = String::new();
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let mut k = chars
        .iter()
        .position(|(p, _)| *p == i)
        .unwrap_or(chars.len());
    while k < chars.len() {
        let (p, c) = chars[k];
        if s[p..].starts_with(&delim) {
            i = p + delim.len();
            return Ok((out, i));
        }
        if c == '\n' && delim.len() == 1 {
            break;
        }
        if c == '\\' && k + 1 < chars.len() {
            let n = chars[k + 1].1;
            if raw {
                out.push('\\');
                out.push(n);
                k += 2;
                continue;
            }
            k += 2;
            match n {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '0' => out.push('\0'),
                '\\' | '\'' | '"' => out.push(n),
                '\n' => {}
                'x' | 'u' | 'U' => {
                    let len = match n {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex: String = chars[k..(k + len).min(chars.len())]
                        .iter()
                        .map(|(_, c)| *c)
                        .collect();
                    let Some(ch) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)
                    else {
                        return unsupported(format!("the escape \\{n}{hex}"));
                    };
                    out.push(ch);
                    k += len;
                }
                _ => {
                    out.push('\\');
                    out.push(n);
                }
            }
            continue;
        }
        out.push(c);
        k += 1;
    }
    unsupported("an unterminated string literal")
}

/// Parses the first function definition in `src` (a UDF's `body_text`).
pub fn parse_function(src: &str) -> Result<Function, Unsupported> {
    let lines = lines(src)?;
    let Some(at) = lines
        .iter()
        .position(|l| matches!(l.toks.first(), Some(Tok::Name(n)) if n == "def"))
    else {
        return unsupported("no function definition in the UDF source");
    };
    let def = &lines[at];
    let (name, params, inline) = parse_def(&def.toks)?;
    let mut body_lines: Vec<&[Tok]> = Vec::new();
    if !inline.is_empty() {
        body_lines.push(inline);
    } else {
        let mut body_indent = None;
        for l in &lines[at + 1..] {
            if l.indent <= def.indent {
                break;
            }
            match body_indent {
                None => body_indent = Some(l.indent),
                Some(ind) if ind != l.indent => {
                    return unsupported("nested blocks (if, for, with, try, def) in the UDF");
                }
                _ => {}
            }
            body_lines.push(&l.toks);
        }
    }
    let mut body = Vec::new();
    for toks in body_lines {
        for stmt in toks.split(|t| *t == Tok::Op(";")) {
            if let Some(s) = parse_stmt(stmt)? {
                body.push(s);
            }
        }
    }
    Ok(Function { name, params, body })
}

fn parse_def(toks: &[Tok]) -> Result<(String, Vec<String>, &[Tok]), Unsupported> {
    let Some(Tok::Name(name)) = toks.get(1) else {
        return unsupported("a def without a name");
    };
    if toks.get(2) != Some(&Tok::Op("(")) {
        return unsupported("a def without parameters");
    }
    let mut params = Vec::new();
    let mut depth = 0;
    let mut expect_name = true;
    let mut i = 3;
    while i < toks.len() {
        match &toks[i] {
            Tok::Op("(" | "[" | "{") => depth += 1,
            Tok::Op(")") if depth == 0 => break,
            Tok::Op(")" | "]" | "}") => depth -= 1,
            Tok::Op(",") if depth == 0 => expect_name = true,
            Tok::Op("*" | "**") if depth == 0 && expect_name => {
                return unsupported("variadic UDF parameters");
            }
            Tok::Name(n) if depth == 0 && expect_name => {
                params.push(n.clone());
                expect_name = false;
            }
            _ => {}
        }
        i += 1;
    }
    // Skip `) -> annotation :`.
    let mut depth = 0;
    i += 1;
    while i < toks.len() {
        match &toks[i] {
            Tok::Op("(" | "[" | "{") => depth += 1,
            Tok::Op(")" | "]" | "}") => depth -= 1,
            Tok::Op(":") if depth == 0 => return Ok((name.clone(), params, &toks[i + 1..])),
            _ => {}
        }
        i += 1;
    }
    unsupported("a def without ':'")
}

fn parse_stmt(toks: &[Tok]) -> Result<Option<Stmt>, Unsupported> {
    let Some(first) = toks.first() else {
        return Ok(None);
    };
    if let Tok::Name(kw) = first {
        match kw.as_str() {
            "import" | "from" | "pass" => return Ok(None),
            "return" => {
                let mut p = Parser { toks, at: 1 };
                let e = p.expr_list()?;
                p.end()?;
                return Ok(Some(Stmt::Return(e)));
            }
            "if" | "for" | "while" | "with" | "try" | "def" | "class" | "lambda" | "global"
            | "nonlocal" | "del" | "assert" | "raise" | "yield" | "async" | "await" | "print"
            | "else" | "elif" | "except" | "finally" => {
                return unsupported(format!("the statement '{kw}'"));
            }
            _ => {}
        }
    }
    // An assignment: `target = expr` (one `=` at depth 0), or a bare expression.
    let mut depth = 0;
    let mut eq = None;
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Op("(" | "[" | "{") => depth += 1,
            Tok::Op(")" | "]" | "}") => depth -= 1,
            Tok::Op("=") if depth == 0 => {
                if eq.is_some() {
                    return unsupported("chained assignments");
                }
                eq = Some(i);
            }
            Tok::Op(
                "+=" | "-=" | "*=" | "/=" | "%=" | "//=" | "**=" | "&=" | "|=" | ":=" | "->",
            ) if depth == 0 => return unsupported("augmented assignments"),
            _ => {}
        }
    }
    let Some(eq) = eq else {
        // A bare expression: a docstring is the only one without effect.
        return match toks {
            [Tok::Str(_)] => Ok(None),
            _ => unsupported("an expression statement"),
        };
    };
    let mut lhs = &toks[..eq];
    // `name: annotation = expr`
    if let [Tok::Name(_), Tok::Op(":"), ..] = lhs {
        lhs = &lhs[..1];
    }
    let mut p = Parser { toks: lhs, at: 0 };
    let target = match p.expr()? {
        Expr::Name(n) => Target::Name(n),
        Expr::Index(base, key) => match *base {
            Expr::Name(n) => Target::Item(n, *key),
            _ => return unsupported("assignment to a nested subscript"),
        },
        _ => return unsupported("assignment to an attribute or a tuple"),
    };
    p.end()?;
    let mut p = Parser {
        toks: &toks[eq + 1..],
        at: 0,
    };
    let value = p.expr_list()?;
    p.end()?;
    Ok(Some(Stmt::Assign(target, value)))
}

struct Parser<'a> {
    toks: &'a [Tok],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Name(n)) if n == kw)
    }

    fn expect(&mut self, op: &str) -> Result<(), Unsupported> {
        if self.eat(op) {
            Ok(())
        } else {
            unsupported(format!(
                "a syntax this subset does not read (expected '{op}')"
            ))
        }
    }

    fn end(&self) -> Result<(), Unsupported> {
        match self.peek() {
            None => Ok(()),
            Some(t) => unsupported(format!("unexpected {t:?} in the UDF")),
        }
    }

    /// `a, b` as a tuple (return values, assignments).
    fn expr_list(&mut self) -> Result<Expr, Unsupported> {
        let first = self.expr()?;
        if !self.eat(",") {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.peek().is_some() {
            items.push(self.expr()?);
            if !self.eat(",") {
                break;
            }
        }
        Ok(Expr::Tuple(items))
    }

    fn expr(&mut self) -> Result<Expr, Unsupported> {
        if self.is_kw("lambda") {
            return unsupported("lambda expressions");
        }
        let e = self.or_test()?;
        if self.is_kw("if") {
            return unsupported("conditional expressions (x if c else y)");
        }
        if self.is_kw("for") {
            return unsupported("comprehensions");
        }
        Ok(e)
    }

    fn or_test(&mut self) -> Result<Expr, Unsupported> {
        let e = self.not_test()?;
        if self.is_kw("or") || self.is_kw("and") {
            return unsupported("'and'/'or' (use & and | on columns)");
        }
        Ok(e)
    }

    fn not_test(&mut self) -> Result<Expr, Unsupported> {
        if self.is_kw("not") {
            return unsupported("'not' (use ~ on columns)");
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, Unsupported> {
        let left = self.bitor()?;
        let op = match self.peek() {
            Some(Tok::Op("<")) => CmpOp::Lt,
            Some(Tok::Op("<=")) => CmpOp::Le,
            Some(Tok::Op(">")) => CmpOp::Gt,
            Some(Tok::Op(">=")) => CmpOp::Ge,
            Some(Tok::Op("==")) => CmpOp::Eq,
            Some(Tok::Op("!=")) => CmpOp::Ne,
            Some(Tok::Name(n)) if n == "in" || n == "is" || n == "not" => {
                return unsupported(format!("the operator '{n}'"));
            }
            _ => return Ok(left),
        };
        self.at += 1;
        let right = self.bitor()?;
        if matches!(
            self.peek(),
            Some(Tok::Op("<" | "<=" | ">" | ">=" | "==" | "!="))
        ) {
            return unsupported("chained comparisons");
        }
        Ok(Expr::Compare(op, Box::new(left), Box::new(right)))
    }

    fn binary(
        &mut self,
        ops: &[(&'static str, BinOp)],
        next: fn(&mut Self) -> Result<Expr, Unsupported>,
    ) -> Result<Expr, Unsupported> {
        let mut left = next(self)?;
        'outer: loop {
            for (tok, op) in ops {
                if self.eat(tok) {
                    let right = next(self)?;
                    left = Expr::Binary(*op, Box::new(left), Box::new(right));
                    continue 'outer;
                }
            }
            return Ok(left);
        }
    }

    fn bitor(&mut self) -> Result<Expr, Unsupported> {
        self.binary(&[("|", BinOp::BitOr)], Self::bitxor)
    }

    fn bitxor(&mut self) -> Result<Expr, Unsupported> {
        self.binary(&[("^", BinOp::BitXor)], Self::bitand)
    }

    fn bitand(&mut self) -> Result<Expr, Unsupported> {
        self.binary(&[("&", BinOp::BitAnd)], Self::arith)
    }

    fn arith(&mut self) -> Result<Expr, Unsupported> {
        self.binary(&[("+", BinOp::Add), ("-", BinOp::Sub)], Self::term)
    }

    fn term(&mut self) -> Result<Expr, Unsupported> {
        if matches!(self.peek(), Some(Tok::Op("@"))) {
            return unsupported("matrix multiplication");
        }
        self.binary(
            &[
                ("*", BinOp::Mul),
                ("/", BinOp::Div),
                ("//", BinOp::FloorDiv),
                ("%", BinOp::Mod),
            ],
            Self::factor,
        )
    }

    fn factor(&mut self) -> Result<Expr, Unsupported> {
        let op = if self.eat("-") {
            UnOp::Neg
        } else if self.eat("+") {
            UnOp::Pos
        } else if self.eat("~") {
            UnOp::Invert
        } else {
            return self.power();
        };
        let e = self.factor()?;
        Ok(match (op, e) {
            (UnOp::Neg, Expr::Int(i)) => Expr::Int(i.wrapping_neg()),
            (UnOp::Neg, Expr::Float(f)) => Expr::Float(-f),
            (op, e) => Expr::Unary(op, Box::new(e)),
        })
    }

    fn power(&mut self) -> Result<Expr, Unsupported> {
        let base = self.postfix()?;
        if self.eat("**") {
            let exp = self.factor()?;
            return Ok(Expr::Binary(BinOp::Pow, Box::new(base), Box::new(exp)));
        }
        Ok(base)
    }

    fn postfix(&mut self) -> Result<Expr, Unsupported> {
        let mut e = self.atom()?;
        loop {
            if self.eat(".") {
                let Some(Tok::Name(n)) = self.peek().cloned() else {
                    return unsupported("an attribute that is not a name");
                };
                self.at += 1;
                e = Expr::Attr(Box::new(e), n);
            } else if self.eat("[") {
                let key = self.expr_list()?;
                if matches!(self.peek(), Some(Tok::Op(":"))) {
                    return unsupported("slices");
                }
                self.expect("]")?;
                e = Expr::Index(Box::new(e), Box::new(key));
            } else if self.eat("(") {
                let mut args = Vec::new();
                let mut kwargs = Vec::new();
                while !self.eat(")") {
                    if matches!(self.peek(), Some(Tok::Op("*" | "**"))) {
                        return unsupported("star arguments");
                    }
                    if let (Some(Tok::Name(k)), Some(Tok::Op("="))) =
                        (self.toks.get(self.at), self.toks.get(self.at + 1))
                    {
                        let k = k.clone();
                        self.at += 2;
                        kwargs.push((k, self.expr()?));
                    } else {
                        if !kwargs.is_empty() {
                            return unsupported("a positional argument after keywords");
                        }
                        args.push(self.expr()?);
                    }
                    if !self.eat(",") {
                        self.expect(")")?;
                        break;
                    }
                }
                e = Expr::Call {
                    func: Box::new(e),
                    args,
                    kwargs,
                };
            } else {
                return Ok(e);
            }
        }
    }

    fn atom(&mut self) -> Result<Expr, Unsupported> {
        let Some(t) = self.peek().cloned() else {
            return unsupported("an incomplete expression");
        };
        self.at += 1;
        Ok(match t {
            Tok::Int(i) => Expr::Int(i),
            Tok::Float(f) => Expr::Float(f),
            Tok::Str(mut s) => {
                // Adjacent literals concatenate.
                while let Some(Tok::Str(more)) = self.peek() {
                    s.push_str(more);
                    self.at += 1;
                }
                Expr::Str(s)
            }
            Tok::Name(n) => match n.as_str() {
                "True" => Expr::Bool(true),
                "False" => Expr::Bool(false),
                "None" => Expr::None,
                "lambda" | "not" | "and" | "or" | "if" | "else" | "for" | "in" | "is" | "yield"
                | "await" => return unsupported(format!("'{n}' here")),
                _ => Expr::Name(n),
            },
            Tok::Op("(") => {
                if self.eat(")") {
                    return Ok(Expr::Tuple(Vec::new()));
                }
                let e = self.expr_list()?;
                self.expect(")")?;
                e
            }
            Tok::Op("[") => {
                let mut items = Vec::new();
                while !self.eat("]") {
                    items.push(self.expr()?);
                    if !self.eat(",") {
                        self.expect("]")?;
                        break;
                    }
                }
                Expr::List(items)
            }
            Tok::Op("{") => {
                let mut items = Vec::new();
                while !self.eat("}") {
                    if self.eat("**") {
                        return unsupported("dict unpacking");
                    }
                    let k = self.expr()?;
                    if !self.eat(":") {
                        return unsupported("set literals");
                    }
                    let v = self.expr()?;
                    items.push((k, v));
                    if !self.eat(",") {
                        self.expect("}")?;
                        break;
                    }
                }
                Expr::Dict(items)
            }
            t => return unsupported(format!("unexpected {t:?}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"@on_demand_feature_view(
    sources=[driver_stats_fv, input_request],
    schema=[
        Field(name="conv_rate_plus_val1", dtype=Float64),
        Field(name="conv_rate_plus_val2", dtype=Float64),
    ],
)
def transformed_conv_rate(inputs: pd.DataFrame) -> pd.DataFrame:
    df = pd.DataFrame()
    df["conv_rate_plus_val1"] = inputs["conv_rate"] + inputs["val_to_add"]
    df["conv_rate_plus_val2"] = inputs["conv_rate"] + inputs["val_to_add_2"]
    return df
"#;

    fn col(name: &str) -> Expr {
        Expr::Index(
            Box::new(Expr::Name("inputs".into())),
            Box::new(Expr::Str(name.into())),
        )
    }

    #[test]
    fn the_template_udf() {
        let f = parse_function(TEMPLATE).unwrap();
        assert_eq!(f.name, "transformed_conv_rate");
        assert_eq!(f.params, vec!["inputs"]);
        assert_eq!(f.body.len(), 4);
        assert_eq!(
            f.body[1],
            Stmt::Assign(
                Target::Item("df".into(), Expr::Str("conv_rate_plus_val1".into())),
                Expr::Binary(
                    BinOp::Add,
                    Box::new(col("conv_rate")),
                    Box::new(col("val_to_add"))
                )
            )
        );
        assert_eq!(f.body[3], Stmt::Return(Expr::Name("df".into())));
    }

    #[test]
    fn precedence_is_pythons() {
        let f = parse_function("def f(x):\n    return -x ** 2 + 3 * x & 1 < 2\n").unwrap();
        let Stmt::Return(e) = &f.body[0] else {
            panic!()
        };
        // comparison( bitand( add(neg(pow), mul), 1 ), 2 )
        let Expr::Compare(CmpOp::Lt, l, _) = e else {
            panic!("{e:?}")
        };
        let Expr::Binary(BinOp::BitAnd, l, _) = l.as_ref() else {
            panic!("{l:?}")
        };
        let Expr::Binary(BinOp::Add, l, _) = l.as_ref() else {
            panic!("{l:?}")
        };
        assert!(
            matches!(l.as_ref(), Expr::Unary(UnOp::Neg, p) if matches!(p.as_ref(), Expr::Binary(BinOp::Pow, ..)))
        );
    }

    #[test]
    fn docstrings_comments_imports_and_kwargs() {
        let src = "def f(inputs):\n    \"\"\"Doc.\n    more\"\"\"\n    import numpy as np  # c\n    out = pd.DataFrame()\n    out['a'] = inputs['x'].clip(lower=0, upper=1.5)\n    return out\n";
        let f = parse_function(src).unwrap();
        assert_eq!(f.body.len(), 3);
    }

    #[test]
    fn outside_the_subset() {
        for src in [
            "def f(x):\n    if x:\n        return x\n",
            "def f(x):\n    return [a for a in x]\n",
            "def f(x):\n    y = x if x else 1\n    return y\n",
            "def f(x):\n    x += 1\n    return x\n",
            "def f(x):\n    return f\"{x}\"\n",
            "x = 1\n",
        ] {
            assert!(parse_function(src).is_err(), "{src}");
        }
    }
}
