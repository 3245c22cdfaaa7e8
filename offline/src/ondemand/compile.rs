//! A parsed pandas-mode UDF compiled into a [`Program`]: its local names inlined, its frame
//! operations resolved, every output an expression over the input columns it reads.

use super::column::{self, Col, Dtype, EvalError, MathFn, Obj, Operand};
use super::parse::{self, BinOp, CmpOp, Expr, Stmt, Target, UnOp, Unsupported, unsupported};

/// What an input column holds, as far as the native subset cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// integers and floats
    Num,
    Bool,
    Str,
    /// anything else (lists, bytes, maps, timestamps): not readable by the native engine
    Other,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Input(usize),
    Lit(Obj),
    Binary(BinOp, Box<Node>, Box<Node>),
    Compare(CmpOp, Box<Node>, Box<Node>),
    Unary(UnOp, Box<Node>),
    Math(MathFn, Box<Node>),
    Extreme(bool, Box<Node>, Box<Node>),
    Select(Box<Node>, Box<Node>, Box<Node>),
    FillNa(Box<Node>, Box<Node>),
    Clip(Box<Node>, Option<Box<Node>>, Option<Box<Node>>),
    Round(Box<Node>, i32),
    IsNa(Box<Node>, bool),
    AsType(Box<Node>, Dtype),
}

impl Node {
    fn is_scalar(&self) -> bool {
        match self {
            Node::Input(_) => false,
            Node::Lit(_) => true,
            Node::Binary(_, a, b) | Node::Compare(_, a, b) | Node::Extreme(_, a, b) => {
                a.is_scalar() && b.is_scalar()
            }
            Node::Unary(_, a) | Node::Math(_, a) | Node::Round(a, _) => a.is_scalar(),
            // These build columns.
            Node::Select(..) | Node::FillNa(..) | Node::Clip(..) | Node::IsNa(..) => false,
            Node::AsType(..) => false,
        }
    }
}

/// A compiled UDF.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    /// The input columns it reads, in the order [`Program::evaluate`] takes them.
    inputs: Vec<String>,
    /// The frame it returns: column name → expression.
    outputs: Vec<(String, Node)>,
}

#[derive(Debug, Clone)]
enum Sym {
    /// A frame: the UDF's input (`inputs`) with the columns assigned into it, or a frame the
    /// UDF built.
    Frame {
        of_inputs: bool,
        cols: Vec<(String, Node)>,
    },
    Val(Node),
    Module(&'static str),
}

struct Compiler<'a> {
    columns: &'a [(String, Kind)],
    inputs: Vec<String>,
    locals: Vec<(String, Sym)>,
}

impl Program {
    /// Compiles `udf` (a `body_text`) of an on-demand view in `mode` whose input frame has
    /// `columns`.
    pub fn compile(udf: &str, mode: &str, columns: &[(String, Kind)]) -> Result<Self, Unsupported> {
        if mode != "pandas" {
            return unsupported(format!(
                "mode {mode:?} (the native engine compiles pandas mode)"
            ));
        }
        let f = parse::parse_function(udf)?;
        let [param] = f.params.as_slice() else {
            return unsupported("a UDF that does not take exactly one argument");
        };
        let mut c = Compiler {
            columns,
            inputs: Vec::new(),
            locals: vec![
                (
                    param.clone(),
                    Sym::Frame {
                        of_inputs: true,
                        cols: Vec::new(),
                    },
                ),
                ("pd".into(), Sym::Module("pd")),
                ("pandas".into(), Sym::Module("pd")),
                ("np".into(), Sym::Module("np")),
                ("numpy".into(), Sym::Module("np")),
                ("math".into(), Sym::Module("math")),
            ],
        };
        for stmt in &f.body {
            match stmt {
                Stmt::Assign(Target::Name(n), e) => {
                    let v = c.value(e)?;
                    c.bind(n, v);
                }
                Stmt::Assign(Target::Item(n, key), e) => {
                    let Expr::Str(col) = key else {
                        return unsupported("a column assignment whose key is not a string");
                    };
                    let node = c.node(e)?;
                    let Some(Sym::Frame { cols, of_inputs }) = c.lookup_mut(n) else {
                        return unsupported(format!(
                            "item assignment to {n}, which is not a frame"
                        ));
                    };
                    if cols.is_empty() && !*of_inputs && node.is_scalar() {
                        return unsupported("a scalar assigned first to an empty DataFrame");
                    }
                    match cols.iter_mut().find(|(c, _)| c == col) {
                        Some(slot) => slot.1 = node,
                        None => cols.push((col.clone(), node)),
                    }
                }
                Stmt::Return(e) => {
                    let Sym::Frame { of_inputs, cols } = c.value(e)? else {
                        return unsupported("a UDF that does not return a DataFrame");
                    };
                    let mut outputs = cols;
                    if of_inputs {
                        // The input frame's own columns are returned too.
                        for (name, _) in columns {
                            if !outputs.iter().any(|(o, _)| o == name) {
                                let node = c.input(name)?;
                                outputs.push((name.clone(), node));
                            }
                        }
                    }
                    return Ok(Program {
                        inputs: c.inputs,
                        outputs,
                    });
                }
            }
        }
        unsupported("a UDF without a return statement")
    }

    /// The input columns [`Program::evaluate`] takes, in order.
    pub fn inputs(&self) -> &[String] {
        &self.inputs
    }

    /// Whether the returned frame has column `name`.
    pub fn produces(&self, name: &str) -> bool {
        self.outputs.iter().any(|(o, _)| o == name)
    }

    /// The position of column `name` in the returned frame.
    pub fn output_position(&self, name: &str) -> Option<usize> {
        self.outputs.iter().position(|(o, _)| o == name)
    }

    /// Evaluates the outputs named `wanted` (every one [`Program::produces`]) over `rows` rows;
    /// `inputs[i]` is the column `self.inputs()[i]`.
    pub fn evaluate(
        &self,
        inputs: &[Col],
        rows: usize,
        wanted: &[&str],
    ) -> Result<Vec<Col>, EvalError> {
        wanted
            .iter()
            .map(|w| {
                let (_, node) = self
                    .outputs
                    .iter()
                    .find(|(o, _)| o == w)
                    .ok_or_else(|| EvalError(format!("the UDF returns no column {w}")))?;
                Ok(eval(node, inputs, rows)?.into_col(rows))
            })
            .collect()
    }
}

fn eval(node: &Node, inputs: &[Col], n: usize) -> Result<Operand, EvalError> {
    let e = |x: &Node| eval(x, inputs, n);
    Ok(match node {
        Node::Input(i) => Operand::Col(inputs[*i].clone()),
        Node::Lit(o) => Operand::Scalar(o.clone()),
        Node::Binary(op, a, b) => column::binary(*op, &e(a)?, &e(b)?, n)?,
        Node::Compare(op, a, b) => column::compare(*op, &e(a)?, &e(b)?, n)?,
        Node::Unary(op, a) => column::unary(*op, &e(a)?, n)?,
        Node::Math(f, a) => column::math(*f, &e(a)?, n)?,
        Node::Extreme(max, a, b) => column::extreme(*max, &e(a)?, &e(b)?, n)?,
        Node::Select(c, a, b) => column::select(&e(c)?, &e(a)?, &e(b)?, n)?,
        Node::FillNa(a, v) => column::fillna(&e(a)?, &e(v)?, n)?,
        Node::Clip(a, lo, hi) => {
            let lo = lo.as_deref().map(e).transpose()?;
            let hi = hi.as_deref().map(e).transpose()?;
            column::clip(&e(a)?, lo.as_ref(), hi.as_ref(), n)?
        }
        Node::Round(a, d) => column::round(&e(a)?, *d, n)?,
        Node::IsNa(a, negate) => column::isna(&e(a)?, *negate, n),
        Node::AsType(a, t) => column::astype(&e(a)?, *t, n)?,
    })
}

fn boxed(n: Node) -> Box<Node> {
    Box::new(n)
}

const NAN: Node = Node::Lit(Obj::Float(f64::NAN));

impl Compiler<'_> {
    fn lookup(&self, name: &str) -> Option<&Sym> {
        self.locals
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    }

    fn lookup_mut(&mut self, name: &str) -> Option<&mut Sym> {
        self.locals
            .iter_mut()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    }

    fn bind(&mut self, name: &str, sym: Sym) {
        match self.lookup_mut(name) {
            Some(s) => *s = sym,
            None => self.locals.push((name.to_owned(), sym)),
        }
    }

    /// The node reading input column `name`.
    fn input(&mut self, name: &str) -> Result<Node, Unsupported> {
        let Some((_, kind)) = self.columns.iter().find(|(c, _)| c == name) else {
            return unsupported(format!(
                "column {name:?}, which is not an input of the view"
            ));
        };
        if *kind == Kind::Other {
            return unsupported(format!(
                "column {name:?}, whose type the native engine does not read"
            ));
        }
        let i = match self.inputs.iter().position(|c| c == name) {
            Some(i) => i,
            None => {
                self.inputs.push(name.to_owned());
                self.inputs.len() - 1
            }
        };
        Ok(Node::Input(i))
    }

    fn frame_column(
        &mut self,
        of_inputs: bool,
        cols: &[(String, Node)],
        name: &str,
    ) -> Result<Node, Unsupported> {
        if let Some((_, n)) = cols.iter().find(|(c, _)| c == name) {
            return Ok(n.clone());
        }
        if of_inputs {
            return self.input(name);
        }
        unsupported(format!(
            "column {name:?}, which the UDF's frame does not have"
        ))
    }

    /// An expression as a value: a frame, a module or a column expression.
    fn value(&mut self, e: &Expr) -> Result<Sym, Unsupported> {
        match e {
            Expr::Name(n) => match self.lookup(n) {
                Some(s) => Ok(s.clone()),
                None => unsupported(format!("the name {n}")),
            },
            Expr::Call { func, args, kwargs } => {
                if let Expr::Attr(recv, method) = func.as_ref() {
                    if matches!(self.lookup_name(recv), Some(Sym::Module("pd")))
                        && method == "DataFrame"
                    {
                        return self.data_frame(args, kwargs);
                    }
                    if method == "copy"
                        && args.is_empty()
                        && let frame @ Sym::Frame { .. } = self.value(recv)?
                    {
                        return Ok(frame);
                    }
                }
                Ok(Sym::Val(self.node(e)?))
            }
            Expr::Index(base, key) => {
                let base = self.value(base)?;
                match (base, key.as_ref()) {
                    (Sym::Frame { of_inputs, cols }, Expr::List(names)) => {
                        let mut picked = Vec::new();
                        for n in names {
                            let Expr::Str(n) = n else {
                                return unsupported("a column list that is not of strings");
                            };
                            let node = self.frame_column(of_inputs, &cols, n)?;
                            picked.push((n.clone(), node));
                        }
                        Ok(Sym::Frame {
                            of_inputs: false,
                            cols: picked,
                        })
                    }
                    (Sym::Frame { of_inputs, cols }, Expr::Str(n)) => {
                        Ok(Sym::Val(self.frame_column(of_inputs, &cols, n)?))
                    }
                    _ => unsupported("a subscript other than a frame's column or columns"),
                }
            }
            _ => Ok(Sym::Val(self.node(e)?)),
        }
    }

    fn lookup_name(&self, e: &Expr) -> Option<&Sym> {
        match e {
            Expr::Name(n) => self.lookup(n),
            _ => None,
        }
    }

    fn data_frame(&mut self, args: &[Expr], kwargs: &[(String, Expr)]) -> Result<Sym, Unsupported> {
        if kwargs.iter().any(|(k, _)| k != "index") {
            return unsupported("pd.DataFrame with arguments other than a dict and index");
        }
        let mut cols = Vec::new();
        match args {
            [] => {}
            [Expr::Dict(items)] => {
                for (k, v) in items {
                    let Expr::Str(k) = k else {
                        return unsupported("a DataFrame dict whose keys are not strings");
                    };
                    cols.push((k.clone(), self.node(v)?));
                }
                if !cols.is_empty() && cols.iter().all(|(_, n)| n.is_scalar()) {
                    return unsupported("a DataFrame of scalars only");
                }
            }
            _ => return unsupported("pd.DataFrame of something other than a dict"),
        }
        Ok(Sym::Frame {
            of_inputs: false,
            cols,
        })
    }

    /// An expression that must be a column or scalar.
    fn node(&mut self, e: &Expr) -> Result<Node, Unsupported> {
        Ok(match e {
            Expr::Int(i) => Node::Lit(Obj::Int(*i)),
            Expr::Float(f) => Node::Lit(Obj::Float(*f)),
            Expr::Str(s) => Node::Lit(Obj::Str(s.clone())),
            Expr::Bool(b) => Node::Lit(Obj::Bool(*b)),
            Expr::None => Node::Lit(Obj::None),
            Expr::Name(_) | Expr::Index(..) => match self.value(e)? {
                Sym::Val(n) => n,
                _ => return unsupported("a frame or module used as a column"),
            },
            Expr::Attr(recv, attr) => match self.lookup_name(recv).cloned() {
                Some(Sym::Module(m)) => match (m, attr.as_str()) {
                    ("np", "nan" | "NaN" | "NAN") | ("math", "nan") => NAN,
                    ("np", "inf" | "Inf" | "infty") | ("math", "inf") => {
                        Node::Lit(Obj::Float(f64::INFINITY))
                    }
                    ("np" | "math", "pi") => Node::Lit(Obj::Float(std::f64::consts::PI)),
                    ("np" | "math", "e") => Node::Lit(Obj::Float(std::f64::consts::E)),
                    ("pd", "NA") => Node::Lit(Obj::None),
                    _ => return unsupported(format!("{m}.{attr}")),
                },
                Some(Sym::Frame { of_inputs, cols }) => {
                    self.frame_column(of_inputs, &cols, attr)?
                }
                _ => return unsupported(format!("the attribute .{attr}")),
            },
            Expr::Unary(op, a) => Node::Unary(*op, boxed(self.node(a)?)),
            Expr::Binary(op, a, b) => Node::Binary(*op, boxed(self.node(a)?), boxed(self.node(b)?)),
            Expr::Compare(op, a, b) => {
                Node::Compare(*op, boxed(self.node(a)?), boxed(self.node(b)?))
            }
            Expr::Call { func, args, kwargs } => self.call(func, args, kwargs)?,
            Expr::Dict(_) | Expr::List(_) | Expr::Tuple(_) => {
                return unsupported("a dict, list or tuple where a column is expected");
            }
        })
    }

    fn call(
        &mut self,
        func: &Expr,
        args: &[Expr],
        kwargs: &[(String, Expr)],
    ) -> Result<Node, Unsupported> {
        // Argument `i` or keyword `name`.
        let arg = |i: usize, name: &str| -> Option<&Expr> {
            args.get(i)
                .or_else(|| kwargs.iter().find(|(k, _)| k == name).map(|(_, v)| v))
        };
        let known = |names: &[&str]| -> Result<(), Unsupported> {
            match kwargs.iter().find(|(k, _)| !names.contains(&k.as_str())) {
                Some((k, _)) => unsupported(format!("the keyword argument {k}=")),
                None => Ok(()),
            }
        };
        match func {
            Expr::Name(f) if self.lookup(f).is_none() => match f.as_str() {
                "abs" if args.len() == 1 => {
                    Ok(Node::Math(MathFn::Abs, boxed(self.node(&args[0])?)))
                }
                "round" if !args.is_empty() => {
                    let digits = self.digits(args.get(1))?;
                    Ok(Node::Round(boxed(self.node(&args[0])?), digits))
                }
                _ => unsupported(format!("the function {f}()")),
            },
            Expr::Attr(recv, name) => {
                if let Some(Sym::Module(m)) = self.lookup_name(recv).cloned() {
                    return self.module_call(m, name, args, kwargs);
                }
                let this = boxed(self.node(recv)?);
                let one = |c: &mut Self, i: usize, k: &str| -> Result<Box<Node>, Unsupported> {
                    match arg(i, k) {
                        Some(e) => Ok(boxed(c.node(e)?)),
                        None => unsupported(format!(".{name}() without its argument {k}")),
                    }
                };
                Ok(match name.as_str() {
                    "fillna" => {
                        known(&["value"])?;
                        Node::FillNa(this, one(self, 0, "value")?)
                    }
                    "clip" => {
                        known(&["lower", "upper"])?;
                        let lo = arg(0, "lower").map(|e| self.node(e)).transpose()?;
                        let hi = arg(1, "upper").map(|e| self.node(e)).transpose()?;
                        Node::Clip(this, lo.map(boxed), hi.map(boxed))
                    }
                    "where" | "mask" => {
                        known(&["cond", "other"])?;
                        let cond = one(self, 0, "cond")?;
                        let other = match arg(1, "other") {
                            Some(e) => boxed(self.node(e)?),
                            None => boxed(NAN),
                        };
                        if name == "where" {
                            Node::Select(cond, this, other)
                        } else {
                            Node::Select(cond, other, this)
                        }
                    }
                    "astype" => {
                        known(&["dtype"])?;
                        let Some(t) = arg(0, "dtype") else {
                            return unsupported(".astype() without a dtype");
                        };
                        Node::AsType(this, self.dtype(t)?)
                    }
                    "abs" if args.is_empty() && kwargs.is_empty() => Node::Math(MathFn::Abs, this),
                    "round" => {
                        known(&["decimals"])?;
                        Node::Round(this, self.digits(arg(0, "decimals"))?)
                    }
                    "isna" | "isnull" if args.is_empty() => Node::IsNa(this, false),
                    "notna" | "notnull" if args.is_empty() => Node::IsNa(this, true),
                    "copy" if args.is_empty() => *this,
                    "add" | "sub" | "mul" | "div" | "truediv" | "floordiv" | "mod" | "pow" => {
                        known(&["other"])?;
                        let op = match name.as_str() {
                            "add" => BinOp::Add,
                            "sub" => BinOp::Sub,
                            "mul" => BinOp::Mul,
                            "div" | "truediv" => BinOp::Div,
                            "floordiv" => BinOp::FloorDiv,
                            "mod" => BinOp::Mod,
                            _ => BinOp::Pow,
                        };
                        Node::Binary(op, this, one(self, 0, "other")?)
                    }
                    m => return unsupported(format!("the method .{m}()")),
                })
            }
            _ => unsupported("a call of an expression"),
        }
    }

    fn module_call(
        &mut self,
        m: &str,
        name: &str,
        args: &[Expr],
        kwargs: &[(String, Expr)],
    ) -> Result<Node, Unsupported> {
        let n = |c: &mut Self, i: usize| -> Result<Box<Node>, Unsupported> {
            match args.get(i) {
                Some(e) => Ok(boxed(c.node(e)?)),
                None => unsupported(format!("{m}.{name}() without argument {}", i + 1)),
            }
        };
        if !kwargs.is_empty() && !matches!(name, "round" | "around" | "clip") {
            return unsupported(format!("keyword arguments of {m}.{name}()"));
        }
        Ok(match (m, name) {
            ("np", "where") if args.len() == 3 => {
                Node::Select(n(self, 0)?, n(self, 1)?, n(self, 2)?)
            }
            ("np", "maximum" | "fmax") if args.len() == 2 && name == "maximum" => {
                Node::Extreme(true, n(self, 0)?, n(self, 1)?)
            }
            ("np", "minimum") if args.len() == 2 => Node::Extreme(false, n(self, 0)?, n(self, 1)?),
            ("np", "clip") => {
                let kw = |k: &str| kwargs.iter().find(|(x, _)| x == k).map(|(_, v)| v);
                let lo = args
                    .get(1)
                    .or_else(|| kw("a_min"))
                    .map(|e| self.node(e))
                    .transpose()?;
                let hi = args
                    .get(2)
                    .or_else(|| kw("a_max"))
                    .map(|e| self.node(e))
                    .transpose()?;
                let lo = lo.filter(|l| *l != Node::Lit(Obj::None));
                let hi = hi.filter(|h| *h != Node::Lit(Obj::None));
                Node::Clip(n(self, 0)?, lo.map(boxed), hi.map(boxed))
            }
            ("np", "round" | "around") => {
                let d = args
                    .get(1)
                    .or_else(|| kwargs.iter().find(|(k, _)| k == "decimals").map(|(_, v)| v));
                Node::Round(n(self, 0)?, self.digits(d)?)
            }
            ("np", "power") if args.len() == 2 => {
                Node::Binary(BinOp::Pow, n(self, 0)?, n(self, 1)?)
            }
            ("np", "add") if args.len() == 2 => Node::Binary(BinOp::Add, n(self, 0)?, n(self, 1)?),
            ("np", "subtract") if args.len() == 2 => {
                Node::Binary(BinOp::Sub, n(self, 0)?, n(self, 1)?)
            }
            ("np", "multiply") if args.len() == 2 => {
                Node::Binary(BinOp::Mul, n(self, 0)?, n(self, 1)?)
            }
            ("np", "divide" | "true_divide") if args.len() == 2 => {
                Node::Binary(BinOp::Div, n(self, 0)?, n(self, 1)?)
            }
            ("np", "isnan") | ("pd", "isna" | "isnull") if args.len() == 1 => {
                Node::IsNa(n(self, 0)?, false)
            }
            ("pd", "notna" | "notnull") if args.len() == 1 => Node::IsNa(n(self, 0)?, true),
            ("np", f) if args.len() == 1 && MathFn::by_name(f).is_some() => {
                Node::Math(MathFn::by_name(f).expect("checked"), n(self, 0)?)
            }
            _ => return unsupported(format!("{m}.{name}()")),
        })
    }

    fn digits(&mut self, e: Option<&Expr>) -> Result<i32, Unsupported> {
        match e {
            None => Ok(0),
            Some(Expr::Int(i)) if i.unsigned_abs() < 300 => Ok(*i as i32),
            Some(_) => unsupported("rounding to a number of digits that is not a literal"),
        }
    }

    fn dtype(&self, e: &Expr) -> Result<Dtype, Unsupported> {
        let name = match e {
            Expr::Str(s) => s.as_str(),
            Expr::Name(n) if self.lookup(n).is_none() => n.as_str(),
            Expr::Attr(m, n) if matches!(self.lookup_name(m), Some(Sym::Module("np"))) => {
                n.as_str()
            }
            _ => return unsupported("a dtype that is not a name or a string"),
        };
        Ok(match name {
            "float" | "float64" | "double" | "f8" => Dtype::Float64,
            "float32" | "single" | "f4" => Dtype::Float32,
            "int" | "int64" | "i8" => Dtype::Int64,
            "int32" | "i4" => Dtype::Int32,
            "bool" | "bool_" => Dtype::Bool,
            "str" | "object" => Dtype::Str,
            other => return unsupported(format!("the dtype {other}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use larder_protos::feast::types::{Value, value::Val, value_type::Enum as T};

    fn cols(names: &[&str]) -> Vec<(String, Kind)> {
        names.iter().map(|n| (n.to_string(), Kind::Num)).collect()
    }

    const TEMPLATE: &str = "def transformed_conv_rate(inputs: pd.DataFrame) -> pd.DataFrame:\n    df = pd.DataFrame()\n    df[\"conv_rate_plus_val1\"] = inputs[\"conv_rate\"] + inputs[\"val_to_add\"]\n    df[\"conv_rate_plus_val2\"] = inputs[\"conv_rate\"] + inputs[\"val_to_add_2\"]\n    return df\n";

    #[test]
    fn the_template_computes_as_feast_does() {
        let p = Program::compile(
            TEMPLATE,
            "pandas",
            &cols(&["driver_id", "conv_rate", "val_to_add", "val_to_add_2"]),
        )
        .unwrap();
        assert_eq!(p.inputs(), ["conv_rate", "val_to_add", "val_to_add_2"]);
        let conv = Col::from_values(&[
            Value {
                val: Some(Val::FloatVal(0.5)),
            },
            Value::default(),
        ])
        .unwrap();
        let out = p
            .evaluate(
                &[conv, Col::Int(vec![1, 2]), Col::Int(vec![10, 20])],
                2,
                &["conv_rate_plus_val2"],
            )
            .unwrap();
        let values = out[0].to_values(T::Double).unwrap();
        assert_eq!(values[0].val, Some(Val::DoubleVal(10.5)));
        assert_eq!(values[1], Value::default());
    }

    #[test]
    fn locals_methods_and_numpy() {
        let src = "def f(df):\n    import numpy as np\n    x = df['a'].fillna(0) * 2\n    out = pd.DataFrame({'y': np.where(x > 1, np.sqrt(x), -1.0)})\n    out['z'] = (df.b.clip(lower=0) + x).astype('int64')\n    return out\n";
        let p = Program::compile(src, "pandas", &cols(&["a", "b"])).unwrap();
        let out = p
            .evaluate(
                &[Col::Float(vec![f64::NAN, 2.0]), Col::Int(vec![-5, 3])],
                2,
                &["y", "z"],
            )
            .unwrap();
        assert_eq!(out[0], Col::Float(vec![-1.0, 2.0]));
        assert_eq!(out[1], Col::Int(vec![0, 7]));
    }

    #[test]
    fn assignments_into_the_input_frame() {
        let src = "def f(inputs):\n    inputs['s'] = inputs['a'] + 1\n    return inputs[['s']]\n";
        let p = Program::compile(src, "pandas", &cols(&["a"])).unwrap();
        assert!(p.produces("s") && !p.produces("a"));
    }

    #[test]
    fn outside_the_subset_names_why() {
        for (src, mode, why) in [
            (TEMPLATE, "python", "mode"),
            ("def f(df):\n    return df['nope'] + 1\n", "pandas", "nope"),
            (
                "def f(df):\n    out = pd.DataFrame()\n    out['x'] = df['a'].rolling(2).mean()\n    return out\n",
                "pandas",
                "rolling",
            ),
            (
                "def f(df):\n    out = pd.DataFrame()\n    out['x'] = 1\n    return out\n",
                "pandas",
                "scalar",
            ),
        ] {
            let e = Program::compile(src, mode, &cols(&["a"])).unwrap_err();
            assert!(e.0.contains(why), "{src}: {e}");
        }
    }
}
