//! SCIM filter expressions (RFC 7644 §3.4.2.2): a hand-written
//! recursive-descent parser with length and nesting limits and positioned
//! errors, the [`Filter`] AST with a canonical printer, the evaluator over
//! `serde_json::Value` resources, index hints for the store, and the sort
//! helpers of RFC 7644 §3.4.2.3.
//!
//! The PATCH path grammar (RFC 7644 §3.5.2) shares the lexer and the value
//! filter parser; the sibling `path` module wraps it.
//!
//! # Decisions where the RFC leaves a choice
//!
//! - Keywords (`and`, `or`, `not`, operators, `true`/`false`/`null`) are
//!   case-insensitive. Whitespace is any run of Unicode whitespace and may be
//!   omitted next to `(`, `)`, `[`, `]` and string literals.
//! - `and` binds tighter than `or`; `not` applies only to a parenthesised
//!   filter (`not (…)`); errata 4670 precedence (comparisons bind tightest).
//! - An unquoted comparison value that is not a number or keyword is read as a
//!   string (`externalId eq jyoung`, seen in old Entra documentation) when
//!   [`ParseOptions::bare_values`] is on (the default).
//! - Inside `[...]` only plain sub-attribute names are allowed (no URN, no
//!   dotted name, no nested `[...]`); `attr[...].sub` is rejected in filters
//!   and accepted only by the PATCH path parser, unless
//!   [`ParseOptions::value_path_sub`] is on (Entra's
//!   `emails[type eq "work"].value eq "x"`, read as
//!   `emails[type eq "work" and value eq "x"]`).
//! - The AST derives `Clone`/`PartialEq`/`Debug`, which recurse; parsed
//!   filters are bounded by [`HARD_MAX_DEPTH`], hand-built ones are the
//!   caller's responsibility (printing and evaluation stop at a fixed depth).
//! - An attribute the resource type does not define (or a URN it does not
//!   declare) matches nothing, for every operator including `ne`. An
//!   unqualified name that is not a core attribute resolves to the one
//!   extension defining it (`manager eq "…"`, legacy Entra).
//!   `returned: never` attributes (`password`) are treated as unknown so a
//!   filter cannot probe them.
//! - A complex attribute compared without a sub-attribute (`emails co "x"`,
//!   `members eq "id"`) compares its `value` sub-attribute.
//! - `ne` matches when no value of the attribute equals the operand
//!   (so an absent attribute matches `ne`); `eq null` means "not present" and
//!   `ne null` means "present".
//! - `gt`/`ge`/`lt`/`le` on boolean or binary attributes, and `co`/`sw`/`ew` on
//!   boolean or numeric attributes, are rejected by [`validate`] (→ 400
//!   `invalidFilter`); [`matches`] treats such comparisons as non-matching.
//! - DateTime values are compared as instants after normalising offsets; a
//!   timestamp without zone is taken as UTC; unparsable ones fall back to
//!   case-exact string comparison.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

use super::schema::{AttrDef, AttrType, ResourceDef, Returned, get_ci, starts_with_ci};

/// Default maximum filter length in bytes.
pub const DEFAULT_MAX_LEN: usize = 4096;
/// Default maximum nesting depth (parentheses, `not`, value paths).
pub const DEFAULT_MAX_DEPTH: usize = 16;
/// Nesting ceiling regardless of options: keeps every recursive walk of a
/// parsed filter (printing, evaluation, drop) shallow.
pub const HARD_MAX_DEPTH: usize = 64;
/// Evaluation and printing stop at this AST depth; only hand-built ASTs can
/// reach it (parsed ones are bounded by `HARD_MAX_DEPTH` nesting).
const WALK_LIMIT: usize = 3 * HARD_MAX_DEPTH + 8;

/// Parser limits and leniency switches.
#[derive(Debug, Clone, Copy)]
pub struct ParseOptions {
    /// Maximum input length in bytes.
    pub max_len: usize,
    /// Maximum nesting of `(…)`, `not (…)` and `attr[…]` (capped at
    /// [`HARD_MAX_DEPTH`]).
    pub max_depth: usize,
    /// Accept unquoted comparison values as strings.
    pub bare_values: bool,
    /// Accept `attr[filter].sub op value` (not RFC filter grammar, but what
    /// Entra sends when email is the matching attribute:
    /// `emails[type eq "work"].value eq "x"`), read as
    /// `attr[filter and sub op value]`. Off by default.
    pub value_path_sub: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            max_len: DEFAULT_MAX_LEN,
            max_depth: DEFAULT_MAX_DEPTH,
            bare_values: true,
            value_path_sub: false,
        }
    }
}

// ---------------------------------------------------------------------------
// AST
// ---------------------------------------------------------------------------

/// `[urn ":"] name ["." sub]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

impl AttrPath {
    pub fn new(name: &str) -> AttrPath {
        AttrPath {
            urn: None,
            name: name.to_string(),
            sub: None,
        }
    }
    pub fn with_sub(name: &str, sub: &str) -> AttrPath {
        AttrPath {
            urn: None,
            name: name.to_string(),
            sub: Some(sub.to_string()),
        }
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.urn {
            write!(f, "{u}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(s) = &self.sub {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    pub const ALL: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    fn from_word(w: &str) -> Option<CompareOp> {
        CompareOp::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(w))
    }

    fn is_ordering(self) -> bool {
        matches!(self, CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le)
    }

    fn is_substring(self) -> bool {
        matches!(self, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
    }
}

/// `compValue = false / null / true / number / string`.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("null"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Number(n) => write!(f, "{n}"),
            CompValue::String(s) => {
                // serde_json's string serialiser is the JSON escaper we need.
                let quoted = serde_json::to_string(s).map_err(|_| fmt::Error)?;
                f.write_str(&quoted)
            }
        }
    }
}

/// A parsed filter. `And`/`Or` are n-ary (always ≥ 2 operands when parsed) so
/// a long flat chain `a and b and c …` does not nest.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Present(AttrPath),
    Compare(AttrPath, CompareOp, CompValue),
    /// `attr[inner]`: the inner filter's paths are sub-attributes of `attr`.
    ValuePath(AttrPath, Box<Filter>),
    Not(Box<Filter>),
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

impl Filter {
    fn write(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        if depth > WALK_LIMIT {
            return Err(fmt::Error);
        }
        match self {
            Filter::Present(p) => write!(f, "{p} pr"),
            Filter::Compare(p, op, v) => write!(f, "{p} {} {v}", op.as_str()),
            Filter::ValuePath(p, inner) => {
                write!(f, "{p}[")?;
                inner.write(f, depth + 1)?;
                f.write_str("]")
            }
            Filter::Not(inner) => {
                f.write_str("not (")?;
                inner.write(f, depth + 1)?;
                f.write_str(")")
            }
            Filter::And(items) => write_joined(f, items, " and ", depth, |c| {
                matches!(c, Filter::And(_) | Filter::Or(_))
            }),
            Filter::Or(items) => write_joined(f, items, " or ", depth, |c| matches!(c, Filter::Or(_))),
        }
    }
}

fn write_joined(
    f: &mut fmt::Formatter<'_>,
    items: &[Filter],
    sep: &str,
    depth: usize,
    needs_parens: impl Fn(&Filter) -> bool,
) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        if needs_parens(item) {
            f.write_str("(")?;
            item.write(f, depth + 1)?;
            f.write_str(")")?;
        } else {
            item.write(f, depth + 1)?;
        }
    }
    Ok(())
}

/// Canonical filter text: lowercase keywords, single spaces, JSON literals,
/// parentheses only where precedence needs them. Parsing the printed text
/// yields `f` again for every parsed filter, with one caveat: the length
/// limit applies to what clients send, and the canonical form can be longer
/// (bare values gain quotes, control characters become `\u00XX`), so a
/// filter near the limit round-trips only with `max_len` lifted. Found by
/// `fuzz/fuzz_targets/filter.rs` (inputs in `fuzz/regressions/filter/`);
/// nothing in the server re-parses printed filters.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, 0)
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterErrorKind {
    /// Input longer than `max_len`.
    TooLong,
    /// Nesting deeper than `max_depth`.
    TooDeep,
    /// Grammar violation.
    Syntax,
    /// Well-formed but not applicable to the attribute (e.g. `active gt true`).
    Unsupported,
}

/// A filter rejected by the parser or by [`validate`]; the server answers 400
/// with `scimType` [`FilterError::scim_type`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub kind: FilterErrorKind,
    /// 0-based character offset into the filter text, when known.
    pub position: Option<usize>,
    pub message: String,
}

impl FilterError {
    pub fn scim_type(&self) -> &'static str {
        "invalidFilter"
    }

    fn at(kind: FilterErrorKind, input: &str, byte_pos: usize, message: String) -> FilterError {
        let position = input
            .get(..byte_pos)
            .map(|s| s.chars().count())
            .unwrap_or_else(|| input.chars().count());
        FilterError {
            kind,
            position: Some(position),
            message,
        }
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(f, "invalid filter at position {p}: {}", self.message),
            None => write!(f, "invalid filter: {}", self.message),
        }
    }
}

impl std::error::Error for FilterError {}

// ---------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    /// A decoded JSON string literal.
    Str(String),
    /// A maximal run of characters other than whitespace, `()[]"`.
    Word(String),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// Byte offset of the token start.
    pos: usize,
}

fn is_word_char(c: char) -> bool {
    !(c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | '"'))
}

fn lex(input: &str) -> Result<Vec<Token>, FilterError> {
    let mut toks = Vec::new();
    let mut it = input.char_indices().peekable();
    while let Some(&(pos, c)) = it.peek() {
        let single = match c {
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            _ => None,
        };
        if let Some(tok) = single {
            it.next();
            toks.push(Token { tok, pos });
            continue;
        }
        if c.is_whitespace() {
            it.next();
            continue;
        }
        if c == '"' {
            it.next();
            let mut escaped = false;
            let mut end = None;
            for (i, ch) in it.by_ref() {
                if escaped {
                    escaped = false;
                } else if ch == '\\' {
                    escaped = true;
                } else if ch == '"' {
                    end = Some(i);
                    break;
                }
            }
            let Some(end) = end else {
                return Err(FilterError::at(
                    FilterErrorKind::Syntax,
                    input,
                    pos,
                    "unterminated string literal".into(),
                ));
            };
            let raw = input.get(pos..=end).unwrap_or("");
            let s: String = serde_json::from_str(raw).map_err(|e| {
                FilterError::at(
                    FilterErrorKind::Syntax,
                    input,
                    pos,
                    format!("invalid string literal {raw}: {e}"),
                )
            })?;
            toks.push(Token { tok: Tok::Str(s), pos });
            continue;
        }
        let mut end = input.len();
        while let Some(&(i, ch)) = it.peek() {
            if !is_word_char(ch) {
                end = i;
                break;
            }
            it.next();
        }
        let w = input.get(pos..end).unwrap_or("").to_string();
        toks.push(Token { tok: Tok::Word(w), pos });
    }
    Ok(toks)
}

fn describe(t: Option<&Token>) -> String {
    match t.map(|t| &t.tok) {
        None => "end of filter".into(),
        Some(Tok::LParen) => "'('".into(),
        Some(Tok::RParen) => "')'".into(),
        Some(Tok::LBracket) => "'['".into(),
        Some(Tok::RBracket) => "']'".into(),
        Some(Tok::Str(s)) => format!("string {}", CompValue::String(s.clone())),
        Some(Tok::Word(w)) => format!("'{w}'"),
    }
}

// ---------------------------------------------------------------------------
// Attribute path syntax
// ---------------------------------------------------------------------------

fn valid_attr_name(s: &str) -> bool {
    // ATTRNAME = ALPHA *(nameChar); `$ref` is the one RFC 7643 name outside it.
    if s.eq_ignore_ascii_case("$ref") {
        return true;
    }
    let mut cs = s.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic())
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Parses `[urn ":"] name ["." sub]`. With a `urn:` prefix the attribute is
/// what follows the last colon (URNs themselves contain dots, e.g. `2.0`).
/// On error returns the byte offset within `s` and a message.
fn split_attr_path(s: &str) -> Result<AttrPath, (usize, String)> {
    let (urn, rest, rest_off) = if starts_with_ci(s, "urn:") {
        match s.rfind(':') {
            Some(i) => (
                Some(s.get(..i).unwrap_or("").to_string()),
                s.get(i + 1..).unwrap_or(""),
                i + 1,
            ),
            None => (None, s, 0),
        }
    } else {
        (None, s, 0)
    };
    let (name, sub) = match rest.split_once('.') {
        Some((n, sub)) => (n, Some(sub)),
        None => (rest, None),
    };
    if !valid_attr_name(name) {
        let msg = if name.is_empty() {
            format!("missing attribute name in '{s}'")
        } else {
            format!("'{name}' is not a valid attribute name")
        };
        return Err((rest_off, msg));
    }
    if let Some(sub) = sub
        && !valid_attr_name(sub)
    {
        let off = rest_off + name.len() + 1;
        let msg = if sub.contains('.') {
            format!("'{rest}' has more than one sub-attribute level")
        } else {
            format!("'{sub}' is not a valid sub-attribute name")
        };
        return Err((off, msg));
    }
    Ok(AttrPath {
        urn,
        name: name.to_string(),
        sub: sub.map(str::to_string),
    })
}

/// Parses a standalone attribute path (as used in `attributes`,
/// `excludedAttributes` and `sortBy`).
pub fn parse_attr_path(s: &str) -> Result<AttrPath, FilterError> {
    let t = s.trim();
    let lead = s.len() - s.trim_start().len();
    if t.is_empty() || !t.chars().all(is_word_char) {
        return Err(FilterError::at(
            FilterErrorKind::Syntax,
            s,
            lead,
            format!("'{t}' is not an attribute path"),
        ));
    }
    split_attr_path(t).map_err(|(off, msg)| FilterError::at(FilterErrorKind::Syntax, s, lead + off, msg))
}

fn looks_numeric(w: &str) -> bool {
    let b = w.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i = 1;
    }
    matches!(b.get(i), Some(c) if c.is_ascii_digit()) && b.iter().all(|c| c.is_ascii_digit() || b"+-.eE".contains(c))
}

/// JSON number grammar, parsed with std (exact for every finite f64, unlike
/// serde_json's default fast path, which matters for print/parse identity).
fn parse_number(w: &str) -> Option<serde_json::Number> {
    let b = w.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let s = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - s
    };
    let int_start = i;
    let n = digits(&mut i);
    if n == 0 || (n > 1 && b.get(int_start) == Some(&b'0')) {
        return None;
    }
    let mut integral = true;
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return None;
        }
        integral = false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return None;
        }
        integral = false;
    }
    if i != b.len() {
        return None;
    }
    if integral {
        if let Ok(n) = w.parse::<i64>() {
            return Some(n.into());
        }
        if let Ok(n) = w.parse::<u64>() {
            return Some(n.into());
        }
    }
    serde_json::Number::from_f64(w.parse::<f64>().ok()?)
}

// ---------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------

struct Parser<'a> {
    input: &'a str,
    toks: Vec<Token>,
    i: usize,
    depth: usize,
    max_depth: usize,
    bare_values: bool,
    value_path_sub: bool,
    in_brackets: bool,
}

/// The pieces of a PATCH path, for the sibling `path` module.
pub(crate) struct RawPatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str, opts: &ParseOptions) -> Result<Parser<'a>, FilterError> {
        if input.len() > opts.max_len {
            return Err(FilterError {
                kind: FilterErrorKind::TooLong,
                position: None,
                message: format!("filter is {} bytes long; the maximum is {}", input.len(), opts.max_len),
            });
        }
        Ok(Parser {
            input,
            toks: lex(input)?,
            i: 0,
            depth: 0,
            max_depth: opts.max_depth.min(HARD_MAX_DEPTH),
            bare_values: opts.bare_values,
            value_path_sub: opts.value_path_sub,
            in_brackets: false,
        })
    }

    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.i)
    }

    fn peek_tok(&self) -> Option<&Tok> {
        self.peek().map(|t| &t.tok)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.i).cloned();
        if t.is_some() {
            self.i += 1;
        }
        t
    }

    fn pos(&self) -> usize {
        self.peek().map(|t| t.pos).unwrap_or(self.input.len())
    }

    fn err(&self, byte_pos: usize, msg: String) -> FilterError {
        FilterError::at(FilterErrorKind::Syntax, self.input, byte_pos, msg)
    }

    fn unexpected(&self, expected: &str) -> FilterError {
        self.err(
            self.pos(),
            format!("expected {expected}, found {}", describe(self.peek())),
        )
    }

    fn peek_word_is(&self, kw: &str) -> bool {
        matches!(self.peek_tok(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn enter(&mut self, pos: usize) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(FilterError::at(
                FilterErrorKind::TooDeep,
                self.input,
                pos,
                format!(
                    "filter nests deeper than {} levels of parentheses, 'not' and '[...]'",
                    self.max_depth
                ),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn parse_top(&mut self) -> Result<Filter, FilterError> {
        if self.toks.is_empty() {
            return Err(self.err(0, "filter is empty".into()));
        }
        let f = self.parse_or()?;
        if self.peek().is_some() {
            let what = match self.peek_tok() {
                Some(Tok::RParen) => "unbalanced ')'".to_string(),
                Some(Tok::RBracket) => "unbalanced ']'".to_string(),
                _ => format!("expected 'and', 'or' or end of filter, found {}", describe(self.peek())),
            };
            return Err(self.err(self.pos(), what));
        }
        Ok(f)
    }

    // Recursion below goes parse_or → parse_and → parse_unary → parse_or only
    // through `enter`, so its depth is bounded by `max_depth`.
    fn parse_or(&mut self) -> Result<Filter, FilterError> {
        let mut items = vec![self.parse_and()?];
        while self.peek_word_is("or") {
            self.next();
            items.push(self.parse_and()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Filter::Or(Vec::new()))
        } else {
            Filter::Or(items)
        })
    }

    fn parse_and(&mut self) -> Result<Filter, FilterError> {
        let mut items = vec![self.parse_unary()?];
        while self.peek_word_is("and") {
            self.next();
            items.push(self.parse_unary()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Filter::And(Vec::new()))
        } else {
            Filter::And(items)
        })
    }

    fn parse_unary(&mut self) -> Result<Filter, FilterError> {
        let start = self.pos();
        match self.peek_tok() {
            Some(Tok::LParen) => {
                self.next();
                self.enter(start)?;
                let f = self.parse_or()?;
                self.expect_close(Tok::RParen, start, "(")?;
                self.leave();
                Ok(f)
            }
            Some(Tok::Word(w))
                if w.eq_ignore_ascii_case("not")
                    && matches!(self.toks.get(self.i + 1).map(|t| &t.tok), Some(Tok::LParen)) =>
            {
                self.next();
                self.next();
                self.enter(start)?;
                let f = self.parse_or()?;
                self.expect_close(Tok::RParen, start, "not (")?;
                self.leave();
                Ok(Filter::Not(Box::new(f)))
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("not") => {
                let after = self.toks.get(self.i + 1);
                if after.is_none() || matches!(after.map(|t| &t.tok), Some(Tok::Word(_))) {
                    // `not x eq 1`: give the precise hint rather than reading
                    // `not` as an attribute name.
                    if let Some(Tok::Word(n)) = after.map(|t| &t.tok)
                        && CompareOp::from_word(n).is_none()
                        && !n.eq_ignore_ascii_case("pr")
                    {
                        return Err(self.err(start, "'not' must be followed by '('".into()));
                    }
                }
                self.parse_attr_expr()
            }
            Some(Tok::Word(_)) => self.parse_attr_expr(),
            _ => Err(self.unexpected("an attribute path, '(' or 'not ('")),
        }
    }

    fn expect_close(&mut self, want: Tok, open_pos: usize, opener: &str) -> Result<(), FilterError> {
        if self.peek_tok() == Some(&want) {
            self.next();
            return Ok(());
        }
        let closer = if want == Tok::RParen { "')'" } else { "']'" };
        if self.peek().is_none() {
            return Err(self.err(
                self.input.len(),
                format!(
                    "missing {closer} for '{opener}' opened at position {}",
                    char_pos(self.input, open_pos)
                ),
            ));
        }
        Err(self.unexpected(&format!("'and', 'or' or {closer}")))
    }

    fn parse_attr_path_tok(&mut self) -> Result<(AttrPath, usize), FilterError> {
        let pos = self.pos();
        let Some(Token { tok: Tok::Word(w), .. }) = self.next() else {
            self.i = self.i.saturating_sub(1);
            return Err(self.unexpected("an attribute path"));
        };
        let path = split_attr_path(&w).map_err(|(off, msg)| self.err(pos + off, msg))?;
        if self.in_brackets && (path.urn.is_some() || path.sub.is_some()) {
            return Err(self.err(
                pos,
                format!("inside '[...]' only a sub-attribute name is allowed, found '{w}'"),
            ));
        }
        Ok((path, pos))
    }

    fn parse_attr_expr(&mut self) -> Result<Filter, FilterError> {
        let (path, path_pos) = self.parse_attr_path_tok()?;
        match self.peek_tok() {
            Some(Tok::LBracket) => {
                if self.in_brackets {
                    return Err(self.err(self.pos(), "value paths '[...]' cannot be nested".into()));
                }
                if path.sub.is_some() {
                    return Err(self.err(
                        path_pos,
                        format!("'{path}[...]': a value filter applies to an attribute, not a sub-attribute"),
                    ));
                }
                let open = self.pos();
                self.next();
                let inner = self.parse_bracket_body(open)?;
                if let Some(Tok::Word(w)) = self.peek_tok()
                    && let Some(sub) = w.strip_prefix('.')
                {
                    if !self.value_path_sub {
                        return Err(self.err(
                            self.pos(),
                            format!("'{path}[...]{w}': a sub-attribute after ']' is only valid in PATCH paths"),
                        ));
                    }
                    let sub_pos = self.pos();
                    if !valid_attr_name(sub) {
                        return Err(self.err(sub_pos + 1, format!("'{sub}' is not a valid sub-attribute name")));
                    }
                    let sub = AttrPath::new(sub);
                    self.next();
                    let cond = self.parse_condition(sub)?;
                    let mut items = match inner {
                        Filter::And(v) => v,
                        other => vec![other],
                    };
                    items.push(cond);
                    return Ok(Filter::ValuePath(path, Box::new(Filter::And(items))));
                }
                Ok(Filter::ValuePath(path, Box::new(inner)))
            }
            _ => self.parse_condition(path),
        }
    }

    /// `pr` or `compareOp compValue` after an attribute path.
    fn parse_condition(&mut self, path: AttrPath) -> Result<Filter, FilterError> {
        match self.peek_tok() {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("pr") => {
                self.next();
                Ok(Filter::Present(path))
            }
            Some(Tok::Word(w)) => {
                let Some(op) = CompareOp::from_word(w) else {
                    return Err(self.unexpected("an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) or '['"));
                };
                self.next();
                let value = self.parse_comp_value(op)?;
                Ok(Filter::Compare(path, op, value))
            }
            _ => Err(self.unexpected(&format!(
                "an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after '{path}'"
            ))),
        }
    }

    fn parse_bracket_body(&mut self, open: usize) -> Result<Filter, FilterError> {
        self.enter(open)?;
        self.in_brackets = true;
        let inner = self.parse_or();
        self.in_brackets = false;
        let inner = inner?;
        self.expect_close(Tok::RBracket, open, "[")?;
        self.leave();
        Ok(inner)
    }

    fn parse_comp_value(&mut self, op: CompareOp) -> Result<CompValue, FilterError> {
        let pos = self.pos();
        match self.next().map(|t| t.tok) {
            Some(Tok::Str(s)) => Ok(CompValue::String(s)),
            Some(Tok::Word(w)) => {
                if w.eq_ignore_ascii_case("true") {
                    return Ok(CompValue::Bool(true));
                }
                if w.eq_ignore_ascii_case("false") {
                    return Ok(CompValue::Bool(false));
                }
                if w.eq_ignore_ascii_case("null") {
                    return Ok(CompValue::Null);
                }
                if looks_numeric(&w) {
                    return parse_number(&w)
                        .map(CompValue::Number)
                        .ok_or_else(|| self.err(pos, format!("'{w}' is not a valid number")));
                }
                if self.bare_values && !w.eq_ignore_ascii_case("and") && !w.eq_ignore_ascii_case("or") {
                    return Ok(CompValue::String(w));
                }
                Err(self.err(
                    pos,
                    format!(
                        "expected a value after '{}' (a quoted string, number, true, false or null), found '{w}'",
                        op.as_str()
                    ),
                ))
            }
            other => {
                self.i = self.i.saturating_sub(usize::from(other.is_some()));
                Err(self.unexpected(&format!(
                    "a value after '{}' (a quoted string, number, true, false or null)",
                    op.as_str()
                )))
            }
        }
    }

    fn parse_patch_path(&mut self) -> Result<RawPatchPath, FilterError> {
        if self.toks.is_empty() {
            return Err(self.err(0, "path is empty".into()));
        }
        let (attr, path_pos) = self.parse_attr_path_tok()?;
        let mut filter = None;
        let mut sub = None;
        if self.peek_tok() == Some(&Tok::LBracket) {
            if attr.sub.is_some() {
                return Err(self.err(
                    path_pos,
                    format!("'{attr}[...]': a value filter applies to an attribute, not a sub-attribute"),
                ));
            }
            let open = self.pos();
            self.next();
            filter = Some(self.parse_bracket_body(open)?);
            if let Some(Tok::Word(w)) = self.peek_tok()
                && let Some(s) = w.strip_prefix('.')
            {
                let p = self.pos();
                if !valid_attr_name(s) {
                    return Err(self.err(p + 1, format!("'{s}' is not a valid sub-attribute name")));
                }
                sub = Some(s.to_string());
                self.next();
            }
        }
        if self.peek().is_some() {
            return Err(self.unexpected("end of path"));
        }
        Ok(RawPatchPath { attr, filter, sub })
    }
}

fn char_pos(input: &str, byte_pos: usize) -> usize {
    input.get(..byte_pos).map(|s| s.chars().count()).unwrap_or(0)
}

/// Parses a filter with default limits.
pub fn parse(input: &str) -> Result<Filter, FilterError> {
    parse_with(input, &ParseOptions::default())
}

/// Parses a filter with explicit limits.
pub fn parse_with(input: &str, opts: &ParseOptions) -> Result<Filter, FilterError> {
    Parser::new(input, opts)?.parse_top()
}

impl std::str::FromStr for Filter {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Filter, FilterError> {
        parse(s)
    }
}

pub(crate) fn parse_patch_path(input: &str, opts: &ParseOptions) -> Result<RawPatchPath, FilterError> {
    Parser::new(input, opts)?.parse_patch_path()
}

// ---------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------

/// What names in a filter are resolved against.
#[derive(Clone, Copy)]
enum Scope<'d> {
    Resource(&'d ResourceDef),
    /// Inside `attr[...]`: names are sub-attributes of this complex attribute.
    Element(&'static AttrDef),
}

/// A path resolved against a scope and the raw value(s) it reaches.
struct Hit<'v> {
    attr: &'static AttrDef,
    sub: Option<&'static AttrDef>,
    raw: Option<&'v Value>,
}

fn lookup<'v>(path: &AttrPath, node: &'v Value, scope: Scope<'_>) -> Option<Hit<'v>> {
    let hit = match scope {
        Scope::Resource(def) => {
            let r = def.resolve_lenient(path.urn.as_deref(), &path.name, path.sub.as_deref())?;
            let container = if r.extension {
                get_ci(node, r.schema.id)
            } else {
                Some(node)
            };
            Hit {
                attr: r.attr,
                sub: r.sub,
                raw: container.and_then(|c| get_ci(c, r.attr.name)),
            }
        }
        Scope::Element(parent) => {
            if path.urn.is_some() || path.sub.is_some() {
                return None;
            }
            let attr = parent.sub(&path.name)?;
            Hit {
                attr,
                sub: None,
                raw: get_ci(node, attr.name),
            }
        }
    };
    let never = hit.attr.returned == Returned::Never || hit.sub.is_some_and(|s| s.returned == Returned::Never);
    (!never).then_some(hit)
}

fn push_flat<'v>(out: &mut Vec<&'v Value>, v: &'v Value) {
    match v {
        Value::Array(items) => out.extend(items.iter()),
        other => out.push(other),
    }
}

impl<'v> Hit<'v> {
    /// The leaf definition compared against and the leaf values; a complex
    /// attribute without a sub-attribute stands for its `value` sub-attribute.
    fn leaves(&self) -> (&'static AttrDef, Vec<&'v Value>) {
        let sub = self.sub.or_else(|| {
            if self.attr.is_complex() {
                self.attr.sub("value")
            } else {
                None
            }
        });
        let mut out = Vec::new();
        let Some(raw) = self.raw else {
            return (sub.unwrap_or(self.attr), out);
        };
        match sub {
            Some(s) => {
                let mut elems = Vec::new();
                push_flat(&mut elems, raw);
                for e in elems {
                    if let Some(v) = get_ci(e, s.name) {
                        push_flat(&mut out, v);
                    }
                }
                (s, out)
            }
            None => {
                push_flat(&mut out, raw);
                (self.attr, out)
            }
        }
    }

    fn present(&self) -> bool {
        match (self.sub, self.raw) {
            (_, None) => false,
            (None, Some(raw)) => is_present(raw, 0),
            (Some(s), Some(raw)) => {
                let mut elems = Vec::new();
                push_flat(&mut elems, raw);
                elems
                    .into_iter()
                    .any(|e| get_ci(e, s.name).is_some_and(|v| is_present(v, 0)))
            }
        }
    }
}

/// `pr` semantics: not null, not `""`, not `[]`, not `{}`; an array or object
/// is present when any member is. Depth-limited because stored values may
/// carry arbitrary (unknown extension) JSON.
pub fn is_present(v: &Value, depth: usize) -> bool {
    if depth > 8 {
        return true;
    }
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => a.iter().any(|x| is_present(x, depth + 1)),
        Value::Object(o) => o.values().any(|x| is_present(x, depth + 1)),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

/// Does `resource` (SCIM wire shape) match `filter`? Never panics; see the
/// module documentation for the semantics chosen.
pub fn matches(filter: &Filter, resource: &Value, def: &ResourceDef) -> bool {
    eval(filter, resource, Scope::Resource(def), 0)
}

/// Does one element of a multi-valued complex attribute `parent` match a value
/// filter (the inside of `parent[...]`)? Used by PATCH.
pub fn matches_element(filter: &Filter, element: &Value, parent: &'static AttrDef) -> bool {
    eval(filter, element, Scope::Element(parent), 0)
}

fn eval(f: &Filter, node: &Value, scope: Scope<'_>, depth: usize) -> bool {
    if depth > WALK_LIMIT {
        return false;
    }
    match f {
        Filter::And(items) => items.iter().all(|x| eval(x, node, scope, depth + 1)),
        Filter::Or(items) => items.iter().any(|x| eval(x, node, scope, depth + 1)),
        Filter::Not(inner) => !eval(inner, node, scope, depth + 1),
        Filter::Present(p) => lookup(p, node, scope).is_some_and(|h| h.present()),
        Filter::Compare(p, op, cv) => {
            let Some(hit) = lookup(p, node, scope) else {
                return false;
            };
            compare_hit(&hit, *op, cv)
        }
        Filter::ValuePath(p, inner) => {
            let Some(hit) = lookup(p, node, scope) else {
                return false;
            };
            if !hit.attr.is_complex() || hit.sub.is_some() {
                return false;
            }
            let Some(raw) = hit.raw else { return false };
            let mut elems = Vec::new();
            push_flat(&mut elems, raw);
            elems
                .into_iter()
                .any(|e| e.is_object() && eval(inner, e, Scope::Element(hit.attr), depth + 1))
        }
    }
}

fn compare_hit(hit: &Hit<'_>, op: CompareOp, cv: &CompValue) -> bool {
    if *cv == CompValue::Null {
        return match op {
            CompareOp::Eq => !hit.present(),
            CompareOp::Ne => hit.present(),
            _ => false,
        };
    }
    let (leaf, values) = hit.leaves();
    if op == CompareOp::Ne {
        return !values.iter().any(|v| compare_value(v, CompareOp::Eq, cv, leaf));
    }
    values.iter().any(|v| compare_value(v, op, cv, leaf))
}

fn fold(s: &str, case_exact: bool) -> std::borrow::Cow<'_, str> {
    if case_exact {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(s.to_lowercase())
    }
}

fn ord_matches(op: CompareOp, ord: Ordering) -> bool {
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

fn string_op(v: &str, op: CompareOp, c: &str, case_exact: bool) -> bool {
    let v = fold(v, case_exact);
    let c = fold(c, case_exact);
    match op {
        CompareOp::Co => v.contains(c.as_ref()),
        CompareOp::Sw => v.starts_with(c.as_ref()),
        CompareOp::Ew => v.ends_with(c.as_ref()),
        _ => ord_matches(op, v.as_ref().cmp(c.as_ref())),
    }
}

fn number_cmp(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

fn compare_value(v: &Value, op: CompareOp, cv: &CompValue, leaf: &AttrDef) -> bool {
    match leaf.ty {
        AttrType::Boolean => {
            let want = match cv {
                CompValue::Bool(b) => *b,
                // Entra writes booleans as strings; be as tolerant in filters.
                CompValue::String(s) if s.eq_ignore_ascii_case("true") => true,
                CompValue::String(s) if s.eq_ignore_ascii_case("false") => false,
                _ => return false,
            };
            op == CompareOp::Eq && v.as_bool() == Some(want)
        }
        AttrType::Integer | AttrType::Decimal => match (v, cv) {
            (Value::Number(a), CompValue::Number(b)) if !op.is_substring() => {
                number_cmp(a, b).is_some_and(|o| ord_matches(op, o))
            }
            _ => false,
        },
        AttrType::DateTime => match (v, cv) {
            (Value::String(a), CompValue::String(b)) => {
                if op.is_substring() {
                    return string_op(a, op, b, true);
                }
                match (parse_datetime(a), parse_datetime(b)) {
                    (Some(x), Some(y)) => ord_matches(op, x.cmp(&y)),
                    _ => string_op(a, op, b, true),
                }
            }
            _ => false,
        },
        AttrType::Binary if op.is_ordering() => false,
        AttrType::String | AttrType::Reference | AttrType::Binary => match (v, cv) {
            (Value::String(a), CompValue::String(b)) => string_op(a, op, b, leaf.case_exact),
            _ => false,
        },
        AttrType::Complex => false,
    }
}

/// Checks operator/attribute-type compatibility against a resource type, for
/// the server to answer 400 `invalidFilter` instead of silently matching
/// nothing. Unknown attributes pass (they match nothing).
pub fn validate(filter: &Filter, def: &ResourceDef) -> Result<(), FilterError> {
    validate_in(filter, Scope::Resource(def), 0)
}

fn validate_in(f: &Filter, scope: Scope<'_>, depth: usize) -> Result<(), FilterError> {
    if depth > WALK_LIMIT {
        return Err(FilterError {
            kind: FilterErrorKind::TooDeep,
            position: None,
            message: "filter is nested too deeply".into(),
        });
    }
    match f {
        Filter::And(items) | Filter::Or(items) => items.iter().try_for_each(|x| validate_in(x, scope, depth + 1)),
        Filter::Not(inner) => validate_in(inner, scope, depth + 1),
        Filter::Present(_) => Ok(()),
        Filter::ValuePath(p, inner) => {
            let attr = match scope {
                Scope::Resource(def) => def.resolve_lenient(p.urn.as_deref(), &p.name, None).map(|r| r.attr),
                Scope::Element(parent) => parent.sub(&p.name),
            };
            match attr {
                Some(a) if a.is_complex() => validate_in(inner, Scope::Element(a), depth + 1),
                Some(a) => Err(unsupported(format!(
                    "'{}' is not a complex attribute and cannot take a '[...]' filter",
                    a.name
                ))),
                None => Ok(()),
            }
        }
        Filter::Compare(p, op, cv) => {
            let leaf = match scope {
                Scope::Resource(def) => def
                    .resolve_lenient(p.urn.as_deref(), &p.name, p.sub.as_deref())
                    .map(|r| r.leaf()),
                Scope::Element(parent) => parent.sub(&p.name),
            };
            let Some(mut leaf) = leaf else { return Ok(()) };
            if leaf.is_complex()
                && let Some(v) = leaf.sub("value")
            {
                leaf = v;
            }
            if *cv == CompValue::Null {
                return if matches!(op, CompareOp::Eq | CompareOp::Ne) {
                    Ok(())
                } else {
                    Err(unsupported(format!(
                        "'{p} {} null': only eq and ne can compare with null",
                        op.as_str()
                    )))
                };
            }
            let bad = match leaf.ty {
                AttrType::Boolean => !matches!(op, CompareOp::Eq | CompareOp::Ne),
                AttrType::Binary => op.is_ordering(),
                AttrType::Integer | AttrType::Decimal => op.is_substring(),
                AttrType::Complex => true,
                _ => false,
            };
            if bad {
                return Err(unsupported(format!(
                    "operator '{}' cannot be applied to {} attribute '{p}'",
                    op.as_str(),
                    leaf.ty.as_str()
                )));
            }
            Ok(())
        }
    }
}

fn unsupported(message: String) -> FilterError {
    FilterError {
        kind: FilterErrorKind::Unsupported,
        position: None,
        message,
    }
}

// ---------------------------------------------------------------------------
// RFC 3339 instants
// ---------------------------------------------------------------------------

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` into (UTC seconds since
/// the epoch, nanoseconds). A missing zone is read as UTC. Returns `None` for
/// anything else.
pub fn parse_datetime(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let year = num(0, 4)?;
    let month = num(5, 2)?;
    let day = num(8, 2)?;
    let hour = num(11, 2)?;
    let minute = num(14, 2)?;
    let second = num(17, 2)?;
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut nanos: u32 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        let mut scale = 100_000_000u32;
        while let Some(d) = b.get(i).filter(|c| c.is_ascii_digit()) {
            nanos += u32::from(d - b'0') * scale;
            scale /= 10;
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b.get(i + 3) == Some(&b':') => {
            let oh = num(i + 1, 2)?;
            let om = num(i + 4, 2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some((secs, nanos))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days_from_civil.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

// ---------------------------------------------------------------------------
// Index hints
// ---------------------------------------------------------------------------

/// Attributes roster keeps an exact-match index on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexAttr {
    Id,
    UserName,
    ExternalId,
    EmailValue,
    DisplayName,
}

/// "The candidates are the resources whose `attr` equals `value`." The caller
/// still evaluates the full filter on each candidate. `case_exact` is false
/// for `userName` and `emails.value`, whose indexes must be case-folded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexHint {
    pub attr: IndexAttr,
    pub value: String,
}

impl IndexHint {
    pub fn case_exact(&self) -> bool {
        matches!(
            self.attr,
            IndexAttr::Id | IndexAttr::ExternalId | IndexAttr::DisplayName
        )
    }
}

fn core_urn(p: &AttrPath) -> bool {
    p.urn.as_deref().is_none_or(|u| {
        u.eq_ignore_ascii_case(super::schema::USER_URN) || u.eq_ignore_ascii_case(super::schema::GROUP_URN)
    })
}

fn hint_of(f: &Filter, depth: usize) -> Option<IndexHint> {
    if depth > WALK_LIMIT {
        return None;
    }
    match f {
        Filter::Compare(p, CompareOp::Eq, CompValue::String(v)) if core_urn(p) => {
            let n = p.name.as_str();
            let attr = match p.sub.as_deref() {
                None if n.eq_ignore_ascii_case("id") => IndexAttr::Id,
                None if n.eq_ignore_ascii_case("userName") => IndexAttr::UserName,
                None if n.eq_ignore_ascii_case("externalId") => IndexAttr::ExternalId,
                None if n.eq_ignore_ascii_case("displayName") => IndexAttr::DisplayName,
                None if n.eq_ignore_ascii_case("emails") => IndexAttr::EmailValue,
                Some(s) if n.eq_ignore_ascii_case("emails") && s.eq_ignore_ascii_case("value") => IndexAttr::EmailValue,
                _ => return None,
            };
            Some(IndexHint { attr, value: v.clone() })
        }
        Filter::ValuePath(p, inner) if core_urn(p) && p.name.eq_ignore_ascii_case("emails") => inner_email_hint(inner),
        Filter::And(items) => items
            .iter()
            .filter_map(|x| hint_of(x, depth + 1))
            .min_by_key(|h| h.attr as u8),
        _ => None,
    }
}

fn inner_email_hint(f: &Filter) -> Option<IndexHint> {
    let one = |x: &Filter| match x {
        Filter::Compare(p, CompareOp::Eq, CompValue::String(v))
            if p.name.eq_ignore_ascii_case("value") && p.sub.is_none() =>
        {
            Some(IndexHint {
                attr: IndexAttr::EmailValue,
                value: v.clone(),
            })
        }
        _ => None,
    };
    match f {
        Filter::And(items) => items.iter().find_map(one),
        other => one(other),
    }
}

/// Recognises filters answerable from an exact index: `id`, `userName`,
/// `externalId`, `displayName`, `emails.value` (or `emails[value eq …]`)
/// compared with `eq` to a string, alone or as an operand of a top-level
/// `and`. With several indexable operands the most selective is returned
/// (id, userName, externalId, emails, displayName, in that order).
pub fn index_lookup(filter: &Filter) -> Option<IndexHint> {
    hint_of(filter, 0)
}

/// Every indexable operand of a top-level `and` (or the filter itself), best
/// first, for callers that index only some of these attributes (e.g. no
/// `displayName` index for Users).
pub fn index_hints(filter: &Filter) -> Vec<IndexHint> {
    let mut out: Vec<IndexHint> = match filter {
        Filter::And(items) => items.iter().filter_map(|x| hint_of(x, 1)).collect(),
        other => hint_of(other, 0).into_iter().collect(),
    };
    out.sort_by_key(|h| h.attr as u8);
    out
}

// ---------------------------------------------------------------------------
// Sorting (RFC 7644 §3.4.2.3)
// ---------------------------------------------------------------------------

/// Orders two leaf values of attribute `attr`: strings by `caseExact`
/// (folded to lowercase otherwise), DateTimes as instants, numbers
/// numerically, `false < true`. Null/missing and values of the wrong type sort
/// after everything else, so ascending order lists unassigned values last.
pub fn compare_for_sort(a: &Value, b: &Value, attr: &AttrDef) -> Ordering {
    fn rank(v: &Value, attr: &AttrDef) -> u8 {
        let ok = match attr.ty {
            AttrType::Boolean => v.is_boolean(),
            AttrType::Integer | AttrType::Decimal => v.is_number(),
            AttrType::Complex => false,
            _ => v.is_string(),
        };
        if ok { 0 } else { 1 }
    }
    let (ra, rb) = (rank(a, attr), rank(b, attr));
    if ra != 0 || rb != 0 {
        return ra.cmp(&rb);
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => number_cmp(x, y).unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => {
            if attr.ty == AttrType::DateTime
                && let (Some(p), Some(q)) = (parse_datetime(x), parse_datetime(y))
            {
                return p.cmp(&q);
            }
            fold(x, attr.case_exact).cmp(&fold(y, attr.case_exact))
        }
        _ => Ordering::Equal,
    }
}

/// The value to sort `resource` by for `sortBy=sort_by`, with the leaf
/// attribute definition to pass to [`compare_for_sort`]. For a multi-valued
/// attribute this is the primary element's value, else the first element's
/// (RFC 7644 §3.4.2.3). `None` when the path does not resolve (the caller
/// should then ignore `sortBy` or answer `invalidValue`); `Value::Null` when
/// the resource has no value.
pub fn sort_value(resource: &Value, def: &ResourceDef, sort_by: &str) -> Option<(&'static AttrDef, Value)> {
    let path = parse_attr_path(sort_by).ok()?;
    let hit = lookup(&path, resource, Scope::Resource(def))?;
    let sub = hit.sub.or_else(|| {
        if hit.attr.is_complex() {
            hit.attr.sub("value")
        } else {
            None
        }
    });
    let leaf = sub.unwrap_or(hit.attr);
    if leaf.is_complex() {
        return None;
    }
    let raw = match hit.raw {
        None | Some(Value::Null) => return Some((leaf, Value::Null)),
        Some(r) => r,
    };
    let element = match raw {
        Value::Array(items) => items
            .iter()
            .find(|e| get_ci(e, "primary").and_then(Value::as_bool) == Some(true))
            .or_else(|| items.first()),
        other => Some(other),
    };
    let Some(element) = element else {
        return Some((leaf, Value::Null));
    };
    let v = match sub {
        Some(s) => get_ci(element, s.name).cloned().unwrap_or(Value::Null),
        None => element.clone(),
    };
    Some((leaf, v))
}

#[cfg(test)]
mod tests {
    use super::super::schema::{ENTERPRISE_URN, GROUP, USER};
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn p(s: &str) -> Filter {
        match parse(s) {
            Ok(f) => f,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn cmp(path: AttrPath, op: CompareOp, v: &str) -> Filter {
        Filter::Compare(path, op, CompValue::String(v.into()))
    }

    fn err(s: &str) -> FilterError {
        match parse(s) {
            Ok(f) => panic!("{s} parsed as {f:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn every_operator_parses_case_insensitively() {
        for op in CompareOp::ALL {
            let upper = op.as_str().to_uppercase();
            let f = p(&format!("userName {upper} \"x\""));
            assert_eq!(f, cmp(AttrPath::new("userName"), op, "x"));
            assert_eq!(f.to_string(), format!("userName {} \"x\"", op.as_str()));
        }
        assert_eq!(p("title PR"), Filter::Present(AttrPath::new("title")));
    }

    #[test]
    fn literals() {
        assert_eq!(
            p("active eq TRUE"),
            Filter::Compare(AttrPath::new("active"), CompareOp::Eq, CompValue::Bool(true))
        );
        assert_eq!(
            p("x eq false"),
            Filter::Compare(AttrPath::new("x"), CompareOp::Eq, CompValue::Bool(false))
        );
        assert_eq!(
            p("x eq null"),
            Filter::Compare(AttrPath::new("x"), CompareOp::Eq, CompValue::Null)
        );
        assert_eq!(
            p("x gt -1.5e3"),
            Filter::Compare(
                AttrPath::new("x"),
                CompareOp::Gt,
                CompValue::Number(serde_json::Number::from_f64(-1500.0).expect("finite"))
            )
        );
        assert_eq!(
            p("x ge 42"),
            Filter::Compare(AttrPath::new("x"), CompareOp::Ge, CompValue::Number(42.into()))
        );
    }

    #[test]
    fn string_escapes() {
        let f = p(r#"displayName eq "a \"quoted\" \\ \u00e9\n\ud83d\ude00""#);
        assert_eq!(
            f,
            cmp(AttrPath::new("displayName"), CompareOp::Eq, "a \"quoted\" \\ é\n😀")
        );
        assert_eq!(p(&f.to_string()), f);
        // A bracket or keyword inside a string is data.
        assert_eq!(
            p(r#"x eq "a] or (b""#),
            cmp(AttrPath::new("x"), CompareOp::Eq, "a] or (b")
        );
    }

    #[test]
    fn precedence_and_binds_tighter_than_or() {
        let f = p(r#"a eq "1" or b eq "2" and c eq "3""#);
        let a = cmp(AttrPath::new("a"), CompareOp::Eq, "1");
        let b = cmp(AttrPath::new("b"), CompareOp::Eq, "2");
        let c = cmp(AttrPath::new("c"), CompareOp::Eq, "3");
        assert_eq!(f, Filter::Or(vec![a.clone(), Filter::And(vec![b.clone(), c.clone()])]));
        let g = p(r#"(a eq "1" or b eq "2") and c eq "3""#);
        assert_eq!(g, Filter::And(vec![Filter::Or(vec![a.clone(), b.clone()]), c.clone()]));
        assert_eq!(g.to_string(), r#"(a eq "1" or b eq "2") and c eq "3""#);
        let h = p(r#"a eq "1" and b eq "2" and c eq "3""#);
        assert_eq!(h, Filter::And(vec![a, b, c]));
    }

    #[test]
    fn not_and_nested_parens() {
        let f = p(r#"not (a pr) and ((b pr))"#);
        assert_eq!(
            f,
            Filter::And(vec![
                Filter::Not(Box::new(Filter::Present(AttrPath::new("a")))),
                Filter::Present(AttrPath::new("b")),
            ])
        );
        assert_eq!(f.to_string(), "not (a pr) and b pr");
        // No space after `not` is fine (RFC ABNF has none).
        assert_eq!(
            p("NOT(a pr)"),
            Filter::Not(Box::new(Filter::Present(AttrPath::new("a"))))
        );
        let e = err("not a pr");
        assert!(e.message.contains("'not' must be followed by '('"), "{e}");
    }

    #[test]
    fn value_paths() {
        let f = p(r#"emails[type eq "work" and value co "@example.com"]"#);
        assert_eq!(
            f,
            Filter::ValuePath(
                AttrPath::new("emails"),
                Box::new(Filter::And(vec![
                    cmp(AttrPath::new("type"), CompareOp::Eq, "work"),
                    cmp(AttrPath::new("value"), CompareOp::Co, "@example.com"),
                ]))
            )
        );
        let g = p(r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#);
        assert!(matches!(&g, Filter::And(v) if v.len() == 2));
        let e = err(r#"emails[type eq "work"].value eq "x""#);
        assert!(e.message.contains("only valid in PATCH paths"), "{e}");
        let e = err(r#"emails[x[y pr]]"#);
        assert!(e.message.contains("cannot be nested"), "{e}");
        let e = err(r#"emails[name.givenName pr]"#);
        assert!(e.message.contains("only a sub-attribute name"), "{e}");
    }

    #[test]
    fn entra_value_path_sub_option() {
        let opts = ParseOptions {
            value_path_sub: true,
            ..ParseOptions::default()
        };
        let f = parse_with(r#"emails[type eq "work"].value eq "a@x""#, &opts).expect("lenient");
        assert_eq!(
            f,
            Filter::ValuePath(
                AttrPath::new("emails"),
                Box::new(Filter::And(vec![
                    cmp(AttrPath::new("type"), CompareOp::Eq, "work"),
                    cmp(AttrPath::new("value"), CompareOp::Eq, "a@x"),
                ]))
            )
        );
        assert_eq!(f.to_string(), r#"emails[type eq "work" and value eq "a@x"]"#);
        assert_eq!(index_lookup(&f).map(|h| h.attr), Some(IndexAttr::EmailValue));
        let u = json!({"emails": [{"type": "work", "value": "A@x"}, {"type": "home", "value": "b@x"}]});
        assert!(matches(&f, &u, &USER));
        let g = parse_with(r#"emails[type eq "home"].value eq "a@x""#, &opts).expect("lenient");
        assert!(!matches(&g, &u, &USER));
        assert!(parse_with(r#"emails[type eq "work"].value"#, &opts).is_err());
    }

    #[test]
    fn urn_qualified_paths() {
        let f = p(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#);
        assert_eq!(
            f,
            Filter::Compare(
                AttrPath {
                    urn: Some(ENTERPRISE_URN.into()),
                    name: "employeeNumber".into(),
                    sub: None
                },
                CompareOp::Eq,
                CompValue::String("701984".into())
            )
        );
        let g = p(r#"urn:ietf:params:scim:schemas:core:2.0:User:name.familyName sw "J""#);
        assert!(matches!(&g, Filter::Compare(path, ..) if path.sub.as_deref() == Some("familyName")));
        assert_eq!(p(&g.to_string()), g);
    }

    #[test]
    fn bare_values_are_lenient_strings() {
        assert_eq!(
            p("externalId eq jyoung"),
            cmp(AttrPath::new("externalId"), CompareOp::Eq, "jyoung")
        );
        assert_eq!(
            p("id eq 7f4b-11 and manager eq 9"),
            Filter::And(vec![
                cmp(AttrPath::new("id"), CompareOp::Eq, "7f4b-11"),
                Filter::Compare(AttrPath::new("manager"), CompareOp::Eq, CompValue::Number(9.into())),
            ])
        );
        let strict = ParseOptions {
            bare_values: false,
            ..ParseOptions::default()
        };
        assert!(parse_with("externalId eq jyoung", &strict).is_err());
    }

    #[test]
    fn error_positions_and_messages() {
        let e = err(r#"userName eq"#);
        assert_eq!(e.position, Some(11));
        assert!(e.message.contains("value after 'eq'"), "{e}");
        let e = err(r#"userName zz "x""#);
        assert_eq!(e.position, Some(9));
        assert!(e.message.contains("expected an operator"), "{e}");
        let e = err(r#"(a pr"#);
        assert!(e.message.contains("missing ')'"), "{e}");
        assert_eq!(e.position, Some(5));
        let e = err(r#"a pr)"#);
        assert_eq!((e.position, e.message.as_str()), (Some(4), "unbalanced ')'"));
        let e = err(r#"a eq "unterminated"#);
        assert_eq!(e.position, Some(5));
        assert!(e.message.contains("unterminated"));
        let e = err(r#"a eq "bad \x escape""#);
        assert!(e.message.contains("invalid string literal"));
        let e = err("");
        assert_eq!(e.message, "filter is empty");
        let e = err("1abc eq \"x\"");
        assert!(e.message.contains("not a valid attribute name"), "{e}");
        let e = err(r#"a pr b pr"#);
        assert!(e.message.contains("expected 'and', 'or'"), "{e}");
        // Positions count characters, not bytes.
        let e = err("x eq \"é\" zz");
        assert_eq!(e.position, Some(9));
        let e = err("name.a.b pr");
        assert!(e.message.contains("more than one sub-attribute"), "{e}");
        assert!(e.to_string().starts_with("invalid filter at position "));
        assert_eq!(e.scim_type(), "invalidFilter");
    }

    #[test]
    fn depth_and_length_limits() {
        let deep = |n: usize| format!("{}a pr{}", "(".repeat(n), ")".repeat(n));
        assert!(parse(&deep(16)).is_ok());
        let e = err(&deep(17));
        assert_eq!(e.kind, FilterErrorKind::TooDeep);
        assert_eq!(e.position, Some(16));
        let nots = format!("{}a pr{}", "not (".repeat(17), ")".repeat(17));
        assert_eq!(err(&nots).kind, FilterErrorKind::TooDeep);
        let opts = ParseOptions {
            max_depth: 2,
            ..ParseOptions::default()
        };
        assert!(parse_with(r#"(emails[type eq "w"])"#, &opts).is_ok());
        assert_eq!(
            parse_with(r#"(emails[(type eq "w")])"#, &opts).err().map(|e| e.kind),
            Some(FilterErrorKind::TooDeep)
        );
        // Even a huge configured depth is capped.
        let opts = ParseOptions {
            max_depth: 1_000_000,
            max_len: 1_000_000,
            ..ParseOptions::default()
        };
        assert_eq!(
            parse_with(&deep(HARD_MAX_DEPTH + 1), &opts).err().map(|e| e.kind),
            Some(FilterErrorKind::TooDeep)
        );
        let long = format!("userName eq \"{}\"", "x".repeat(DEFAULT_MAX_LEN));
        assert_eq!(err(&long).kind, FilterErrorKind::TooLong);
        // Long flat chains stay flat (no nesting, no deep recursion).
        let chain = vec!["a pr"; 400].join(" and ");
        assert!(matches!(parse(&chain), Ok(Filter::And(v)) if v.len() == 400));
    }

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "Bjensen",
            "userName": "Bjensen@Example.com",
            "name": {"familyName": "Jensen", "givenName": "Barbara"},
            "title": "",
            "active": true,
            "password": "secret",
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "meta": {
                "resourceType": "User",
                "created": "2010-01-23T04:56:22Z",
                "lastModified": "2011-05-13T04:42:34+02:00"
            },
            ENTERPRISE_URN: {"employeeNumber": "701984", "manager": {"value": "26118915"}}
        })
    }

    fn m(s: &str) -> bool {
        matches(&p(s), &user(), &USER)
    }

    #[test]
    fn case_exact_vs_case_insensitive() {
        assert!(m(r#"userName eq "bjensen@example.com""#));
        assert!(m(r#"USERNAME EQ "BJENSEN@EXAMPLE.COM""#));
        assert!(m(r#"userName sw "BJ""#));
        assert!(!m(r#"externalId eq "bjensen""#));
        assert!(m(r#"externalId eq "Bjensen""#));
        assert!(!m(r#"id eq "2819C223-7F76-453A-919D-413861904646""#));
        let g = json!({"displayName": "Ops", "members": [{"value": "u1"}]});
        assert!(matches(&p(r#"displayName eq "Ops""#), &g, &GROUP));
        assert!(!matches(&p(r#"displayName eq "ops""#), &g, &GROUP));
        assert!(matches(&p(r#"members eq "u1""#), &g, &GROUP));
        // Unicode case folding.
        let u = json!({"userName": "ÉLODIE@x"});
        assert!(matches(&p(r#"userName eq "élodie@x""#), &u, &USER));
    }

    #[test]
    fn all_string_operators() {
        assert!(m(r#"name.familyName co "ens""#));
        assert!(m(r#"name.familyName sw "jen""#));
        assert!(m(r#"name.familyName ew "SEN""#));
        assert!(!m(r#"name.familyName ew "jen""#));
        assert!(m(r#"name.familyName ne "Smith""#));
        assert!(!m(r#"name.familyName ne "jensen""#));
        assert!(m(r#"name.familyName gt "J""#));
        assert!(m(r#"name.familyName ge "jensen""#));
        assert!(m(r#"name.familyName lt "K""#));
        assert!(m(r#"name.familyName le "jensen""#));
        assert!(!m(r#"name.familyName lt "jensen""#));
    }

    #[test]
    fn multi_valued_any_match() {
        assert!(m(r#"emails.value eq "babs@jensen.org""#));
        assert!(m(r#"emails co "jensen.org""#));
        assert!(m(r#"emails[type eq "work" and value co "@example.com"]"#));
        assert!(!m(r#"emails[type eq "home" and value co "@example.com"]"#));
        assert!(m(r#"emails[type eq "home"] and emails[primary eq true]"#));
        assert!(m(r#"emails.type eq "home""#));
        // `ne`: no element equals.
        assert!(!m(r#"emails.type ne "home""#));
        assert!(m(r#"emails.type ne "other""#));
    }

    #[test]
    fn logical_operators_evaluate() {
        assert!(m(r#"userName eq "x" or active eq true"#));
        assert!(!m(r#"userName eq "x" or active eq false"#));
        assert!(m(r#"not (userName eq "x") and active eq true"#));
        assert!(!m(r#"not (active eq true)"#));
        assert!(m(r#"active eq "True""#));
    }

    #[test]
    fn present_semantics() {
        assert!(m("userName pr"));
        assert!(!m("title pr"), "empty string is not present");
        assert!(!m("nickName pr"));
        assert!(m("emails pr"));
        assert!(m("name pr"));
        assert!(m("emails.primary pr"));
        let u = json!({"emails": [], "name": {}, "nickName": null, "addresses": [{"type": null}]});
        assert!(!matches(&p("emails pr"), &u, &USER));
        assert!(!matches(&p("name pr"), &u, &USER));
        assert!(!matches(&p("nickName pr"), &u, &USER));
        assert!(!matches(&p("addresses pr"), &u, &USER));
        assert!(matches(&p("nickName eq null"), &u, &USER));
        assert!(m("userName ne null"));
    }

    #[test]
    fn datetime_with_offsets() {
        // 2011-05-13T04:42:34+02:00 == 2011-05-13T02:42:34Z
        assert!(m(r#"meta.lastModified eq "2011-05-13T02:42:34Z""#));
        assert!(!m(r#"meta.lastModified gt "2011-05-13T03:00:00Z""#));
        assert!(m(r#"meta.lastModified lt "2011-05-13T03:00:00Z""#));
        assert!(m(r#"meta.lastModified gt "2011-05-13T04:00:00+02:00""#));
        assert!(m(r#"meta.lastModified ge "2011-05-13T02:42:34.000Z""#));
        assert!(m(r#"meta.created lt "2010-01-23T00:00:00-05:00""#));
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(parse_datetime("1970-01-01T01:00:00+01:00"), Some((0, 0)));
        assert_eq!(
            parse_datetime("2000-03-01T00:00:00.5Z"),
            Some((951_868_800, 500_000_000))
        );
        assert_eq!(parse_datetime("2001-02-29T00:00:00Z"), None);
        assert_eq!(parse_datetime("2001-02-28T00:00:00+2:00"), None);
        assert_eq!(parse_datetime("garbage"), None);
    }

    #[test]
    fn extension_and_unknown_attributes() {
        assert!(m(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#
        ));
        assert!(m(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915""#
        ));
        assert!(m(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "26118915""#
        ));
        // Unknown: matches nothing, not even `ne` or `not`-free negations.
        assert!(!m(r#"nope eq "x""#));
        assert!(!m(r#"nope ne "x""#));
        assert!(!m(r#"urn:example:x:1.0:User:foo pr"#));
        // Unqualified extension attribute: found in its only extension.
        assert!(m(r#"employeeNumber eq "701984""#));
        assert!(m(r#"manager eq "26118915""#));
        // password is returned:never and cannot be probed.
        assert!(!m(r#"password eq "secret""#));
        assert!(!m("password pr"));
    }

    #[test]
    fn boolean_and_number_rules() {
        assert!(m("active eq true"));
        assert!(!m("active gt false"));
        assert_eq!(
            validate(&p("active gt false"), &USER).err().map(|e| e.kind),
            Some(FilterErrorKind::Unsupported)
        );
        assert!(validate(&p(r#"active co "t""#), &USER).is_err());
        assert!(validate(&p(r#"userName gt "a" and emails[primary eq true]"#), &USER).is_ok());
        assert!(validate(&p(r#"emails[primary ge true]"#), &USER).is_err());
        assert!(validate(&p(r#"name eq "x""#), &USER).is_err());
        assert!(validate(&p(r#"nope gt true"#), &USER).is_ok());
        assert!(validate(&p(r#"userName gt null"#), &USER).is_err());
        assert!(validate(&p(r#"userName[value eq "x"]"#), &USER).is_err());
    }

    #[test]
    fn index_hint_recognition() {
        let h = |s: &str| index_lookup(&p(s));
        assert_eq!(
            h(r#"userName eq "a@b""#),
            Some(IndexHint {
                attr: IndexAttr::UserName,
                value: "a@b".into()
            })
        );
        assert_eq!(h(r#"externalId eq "e""#).map(|x| x.attr), Some(IndexAttr::ExternalId));
        assert_eq!(h(r#"ID eq "i""#).map(|x| x.attr), Some(IndexAttr::Id));
        assert_eq!(h(r#"displayName eq "d""#).map(|x| x.attr), Some(IndexAttr::DisplayName));
        assert_eq!(h(r#"emails.value eq "m""#).map(|x| x.attr), Some(IndexAttr::EmailValue));
        assert_eq!(
            h(r#"emails[type eq "work" and value eq "m"]"#),
            Some(IndexHint {
                attr: IndexAttr::EmailValue,
                value: "m".into()
            })
        );
        assert_eq!(
            h(r#"displayName eq "d" and id eq "i""#),
            Some(IndexHint {
                attr: IndexAttr::Id,
                value: "i".into()
            })
        );
        assert_eq!(
            h(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "u""#).map(|x| x.attr),
            Some(IndexAttr::UserName)
        );
        assert_eq!(
            index_hints(&p(r#"displayName eq "d" and title pr and userName eq "u""#))
                .into_iter()
                .map(|h| h.attr)
                .collect::<Vec<_>>(),
            vec![IndexAttr::UserName, IndexAttr::DisplayName]
        );
        assert_eq!(h(r#"userName eq "a" or id eq "b""#), None);
        assert_eq!(h(r#"userName ne "a""#), None);
        assert_eq!(h(r#"userName co "a""#), None);
        assert_eq!(h(r#"not (userName eq "a")"#), None);
        assert_eq!(h(r#"name.givenName eq "a""#), None);
        assert_eq!(h("userName eq 5"), None);
        assert!(
            !IndexHint {
                attr: IndexAttr::UserName,
                value: String::new()
            }
            .case_exact()
        );
    }

    #[test]
    fn sorting() {
        let (_, un) = USER.find_attr("userName").expect("userName");
        assert_eq!(compare_for_sort(&json!("abc"), &json!("ABD"), un), Ordering::Less);
        let (_, id) = USER.find_attr("id").expect("id");
        assert_eq!(compare_for_sort(&json!("b"), &json!("B"), id), Ordering::Greater);
        assert_eq!(compare_for_sort(&Value::Null, &json!("a"), un), Ordering::Greater);
        let (_, lm) = USER.find_attr("meta.lastModified").expect("lm");
        assert_eq!(
            compare_for_sort(&json!("2011-05-13T04:42:34+02:00"), &json!("2011-05-13T03:00:00Z"), lm),
            Ordering::Less
        );
        let (leaf, v) = sort_value(&user(), &USER, "emails").expect("emails");
        assert_eq!((leaf.name, v), ("value", json!("bjensen@example.com")));
        let u = json!({"emails": [{"value": "z@x"}, {"value": "a@x"}]});
        assert_eq!(sort_value(&u, &USER, "emails.value").map(|x| x.1), Some(json!("z@x")));
        assert_eq!(sort_value(&u, &USER, "userName").map(|x| x.1), Some(Value::Null));
        assert_eq!(
            sort_value(&user(), &USER, "name.familyName").map(|x| x.1),
            Some(json!("Jensen"))
        );
        assert!(sort_value(&user(), &USER, "nope").is_none());
        assert!(sort_value(&user(), &USER, "name").is_none());
    }

    // ----- property tests -----

    fn arb_name() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["userName", "emails", "name", "title", "x-y_1", "$ref", "Active"])
            .prop_map(str::to_string)
    }

    fn arb_path(in_brackets: bool) -> impl Strategy<Value = AttrPath> {
        let urn = prop::option::of(prop::sample::select(vec![
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        ]));
        let sub = prop::option::of(prop::sample::select(vec!["value", "givenName", "type"]));
        (urn, arb_name(), sub).prop_map(move |(u, n, s)| AttrPath {
            urn: if in_brackets { None } else { u.map(str::to_string) },
            name: n,
            sub: if in_brackets { None } else { s.map(str::to_string) },
        })
    }

    fn arb_value() -> impl Strategy<Value = CompValue> {
        prop_oneof![
            Just(CompValue::Null),
            any::<bool>().prop_map(CompValue::Bool),
            any::<i64>().prop_map(|n| CompValue::Number(n.into())),
            any::<f64>()
                .prop_filter_map("finite", serde_json::Number::from_f64)
                .prop_map(CompValue::Number),
            any::<String>().prop_map(CompValue::String),
        ]
    }

    fn arb_leaf(in_brackets: bool) -> impl Strategy<Value = Filter> {
        prop_oneof![
            arb_path(in_brackets).prop_map(Filter::Present),
            (
                arb_path(in_brackets),
                prop::sample::select(CompareOp::ALL.to_vec()),
                arb_value()
            )
                .prop_map(|(p, o, v)| Filter::Compare(p, o, v)),
        ]
    }

    fn arb_tree(leaf: BoxedStrategy<Filter>) -> impl Strategy<Value = Filter> {
        leaf.prop_recursive(3, 24, 3, |inner| {
            prop_oneof![
                inner.clone().prop_map(|f| Filter::Not(Box::new(f))),
                prop::collection::vec(inner.clone(), 2..4).prop_map(Filter::And),
                prop::collection::vec(inner, 2..4).prop_map(Filter::Or),
            ]
        })
    }

    fn arb_filter() -> impl Strategy<Value = Filter> {
        let value_path = (arb_path(false), arb_tree(arb_leaf(true).boxed())).prop_map(|(mut p, f)| {
            p.sub = None;
            Filter::ValuePath(p, Box::new(f))
        });
        let leaf = prop_oneof![3 => arb_leaf(false), 1 => value_path].boxed();
        arb_tree(leaf)
    }

    proptest! {
        #[test]
        fn print_parse_round_trip(f in arb_filter()) {
            let text = f.to_string();
            let roomy = ParseOptions { max_len: usize::MAX, ..ParseOptions::default() };
            let back = parse_with(&text, &roomy);
            prop_assert_eq!(back.as_ref().ok(), Some(&f), "text: {} err: {:?}", text, back.as_ref().err());
        }

        #[test]
        fn parser_never_panics(s in ".{0,200}") {
            let _ = parse(&s);
        }

        #[test]
        fn parser_never_panics_on_filterish(s in r#"[a-z\[\]() ."\\:0-9-]{0,120}"#) {
            if let Ok(f) = parse(&s) {
                // Whatever parses must print to something that parses back the same.
                prop_assert_eq!(parse(&f.to_string()).ok(), Some(f.clone()));
                let _ = matches(&f, &user(), &USER);
            }
        }
    }
}
