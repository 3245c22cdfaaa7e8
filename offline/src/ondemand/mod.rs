//! On-demand feature views, the native engine: a pandas-mode UDF's source text (`body_text`)
//! compiled, for a documented subset, into a small expression program evaluated over columns
//! with pandas' dtype and missing-value rules — no Python on the request path.
//!
//! The subset (README "On-demand feature views"): the UDF builds a frame (`pd.DataFrame()`
//! then `df["out"] = …`, `pd.DataFrame({"out": …})`, or assignments into its input frame)
//! and returns it; expressions are input columns (`inputs["f"]`, `inputs.f`), literals, local
//! names, `+ - * / // % **`, comparisons, `& | ^ ~`, `where`/`mask`/`np.where`, `fillna`,
//! `clip`/`np.clip`, `abs`/`round`/`astype`/`isna`/`notna`, and numpy's elementwise math
//! (`np.sqrt`, `np.log`, `np.exp`, …, `np.maximum`/`np.minimum`). String columns concatenate
//! with `+`. Anything else is [`Unsupported`]: the view then needs the Python engine.
//!
//! Columns follow pandas: integer columns with a missing value are float64 with NaN, float
//! columns hold NaN for missing values, booleans with a missing value and strings are object
//! columns whose missing values are `None`; object arithmetic skips missing values; outputs are
//! cast to the declared feature types as Feast's `python_values_to_proto_values` casts them
//! (NaN and `None` become the empty value).

pub mod batch;
mod column;
mod compile;
pub mod parse;

pub use column::{Col, EvalError, Obj};
pub use compile::{Kind, Program};
pub use parse::Unsupported;
