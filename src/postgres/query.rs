//! SQL text -> what a span may say about it: the statements, each with its
//! literals replaced by `?`, its operation and the one table it names, and
//! the sqlcommenter `traceparent` of the whole text.
//!
//! The text of a query holds user data (names, e-mail addresses, tokens),
//! so nothing from it reaches a span except through [`Statement`]: string
//! constants (`'…'`, `E'…'`, `B'…'`, `X'…'`, `U&'…'`, `$tag$…$tag$`) and
//! numeric constants become `?` (PostgreSQL lexical structure, "Constants",
//! docs §4.1.2), comments are dropped, whitespace is collapsed.
//! Identifiers, keywords, operators and `$n` parameter placeholders stay:
//! they are the query's shape, which OpenTelemetry's `db.query.text` asks
//! for ("sanitized ... replacing literal values with `?`", database spans
//! semantic conventions). An unterminated constant swallows the rest of
//! the text, so a truncated query never leaks its tail.

use std::sync::Arc;

use crate::span::SpanContext;

/// One statement of a query text, already sanitised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// The text with every constant replaced by `?` (`db.query.text`).
    pub text: Arc<str>,
    /// The operation in upper case (`SELECT`), `db.operation.name`.
    pub operation: Option<Arc<str>>,
    /// The table, when the statement names exactly one (`db.collection.name`).
    pub collection: Option<Arc<str>>,
}

/// A parsed query text: its statements (a simple query may hold several,
/// separated by `;`) and the trace context of its sqlcommenter comment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    pub statements: Vec<Statement>,
    /// `traceparent` from a leading or trailing `/*…*/` comment
    /// (sqlcommenter, `/*traceparent='00-…'*/`).
    pub traceparent: Option<SpanContext>,
}

/// One lexical token of the analysis (constants carry no text); text is
/// borrowed from the query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token<'a> {
    /// A keyword or unquoted identifier, as written.
    Word(&'a str),
    /// A `"quoted"` identifier, with its quotes.
    Quoted(&'a str),
    Punct(char),
    Constant,
}

/// Parses `sql` into sanitised statements and its trace context.
pub fn parse(sql: &str) -> Query {
    let mut lexer = Lexer::new(sql);
    lexer.run();
    let traceparent = lexer
        .leading
        .into_iter()
        .chain(lexer.trailing)
        .find_map(|comment| traceparent(&sql[comment]));
    Query {
        statements: lexer.statements,
        traceparent,
    }
}

/// The `traceparent` value inside one comment's text, if valid
/// (sqlcommenter: `key='value'` pairs separated by commas; the value is
/// URL-encoded, which leaves a `traceparent` unchanged).
fn traceparent(comment: &str) -> Option<SpanContext> {
    let start = comment.find("traceparent='")? + "traceparent='".len();
    let end = comment[start..].find('\'')? + start;
    crate::propagation::parse_traceparent(&comment.as_bytes()[start..end])
}

/// One pass over the text: sanitised output, tokens and comment positions.
struct Lexer<'a> {
    sql: &'a str,
    at: usize,
    statements: Vec<Statement>,
    text: String,
    tokens: Vec<Token<'a>>,
    /// Whitespace or a comment since the last token: one space before the next.
    gap: bool,
    /// Byte range of a comment before any token.
    leading: Option<std::ops::Range<usize>>,
    /// Byte range of a comment with no token after it (so far).
    trailing: Option<std::ops::Range<usize>>,
    seen_token: bool,
}

impl<'a> Lexer<'a> {
    fn new(sql: &'a str) -> Self {
        Self {
            sql,
            at: 0,
            statements: Vec::new(),
            text: String::new(),
            tokens: Vec::new(),
            gap: false,
            leading: None,
            trailing: None,
            seen_token: false,
        }
    }

    fn rest(&self) -> &'a [u8] {
        &self.sql.as_bytes()[self.at..]
    }

    fn run(&mut self) {
        while let Some(&b) = self.rest().first() {
            let next = self.rest().get(1).copied();
            match (b, next) {
                (b'-', Some(b'-')) => self.line_comment(),
                (b'/', Some(b'*')) => self.block_comment(),
                (b'\'', _) => self.string(false),
                (b'"', _) => self.quoted_identifier(),
                (b'$', Some(d)) if d.is_ascii_digit() => self.parameter(),
                (b'$', _) => self.dollar_string(),
                (b';', _) => {
                    self.at += 1;
                    self.end_statement();
                }
                (b'0'..=b'9', _) => self.number(),
                (b'.', Some(d)) if d.is_ascii_digit() => self.number(),
                _ if b.is_ascii_whitespace() => {
                    self.at += 1;
                    self.gap = true;
                }
                _ if is_word_start(b) => self.word(),
                _ => {
                    // Operators and punctuation; a whole UTF-8 character.
                    let c = self.sql[self.at..].chars().next().unwrap_or('?');
                    self.at += c.len_utf8();
                    self.push(Token::Punct(c), c.encode_utf8(&mut [0; 4]));
                }
            }
        }
        self.end_statement();
    }

    /// Appends one token to the statement being read.
    fn push(&mut self, token: Token<'a>, text: &str) {
        if self.gap && !self.text.is_empty() {
            self.text.push(' ');
        }
        self.gap = false;
        self.text.push_str(text);
        self.tokens.push(token);
        self.seen_token = true;
        self.trailing = None;
    }

    fn end_statement(&mut self) {
        let text = std::mem::take(&mut self.text);
        self.gap = false;
        if self.tokens.is_empty() {
            return;
        }
        let tokens = &self.tokens;
        let operation = operation(tokens);
        let collection = operation.as_deref().and_then(|op| collection(op, tokens));
        self.tokens.clear();
        self.statements.push(Statement {
            text: text.into(),
            operation: operation.map(Arc::from),
            collection: collection.map(Arc::from),
        });
    }

    fn comment(&mut self, range: std::ops::Range<usize>) {
        if !self.seen_token && self.leading.is_none() {
            self.leading = Some(range.clone());
        }
        self.trailing = Some(range);
        self.gap = true;
    }

    fn line_comment(&mut self) {
        let start = self.at;
        let len = self.rest().iter().position(|&b| b == b'\n');
        self.at = len.map_or(self.sql.len(), |n| self.at + n);
        self.comment(start..self.at);
    }

    /// `/* … */`, which nests in PostgreSQL (docs §4.1.5).
    fn block_comment(&mut self) {
        let start = self.at;
        let mut depth = 0usize;
        let bytes = self.sql.as_bytes();
        while self.at < bytes.len() {
            match (bytes[self.at], bytes.get(self.at + 1)) {
                (b'/', Some(b'*')) => {
                    depth += 1;
                    self.at += 2;
                }
                (b'*', Some(b'/')) => {
                    depth -= 1;
                    self.at += 2;
                    if depth == 0 {
                        break;
                    }
                }
                _ => self.at += 1,
            }
        }
        self.at = self.at.min(bytes.len());
        self.comment(start..self.at);
    }

    /// A `'…'` constant (`''` is a quote inside it); with backslash
    /// escapes when `escapes` (the `E'…'` form, docs §4.1.2.2).
    fn string(&mut self, escapes: bool) {
        let bytes = self.sql.as_bytes();
        self.at += 1;
        while self.at < bytes.len() {
            match bytes[self.at] {
                b'\\' if escapes => self.at += 2,
                b'\'' if bytes.get(self.at + 1) == Some(&b'\'') => self.at += 2,
                b'\'' => {
                    self.at += 1;
                    break;
                }
                _ => self.at += 1,
            }
        }
        self.at = self.at.min(bytes.len());
        self.push(Token::Constant, "?");
    }

    fn quoted_identifier(&mut self) {
        let start = self.at;
        let bytes = self.sql.as_bytes();
        self.at += 1;
        while self.at < bytes.len() {
            if bytes[self.at] == b'"' {
                if bytes.get(self.at + 1) == Some(&b'"') {
                    self.at += 2;
                    continue;
                }
                self.at += 1;
                break;
            }
            self.at += 1;
        }
        let text = &self.sql[start..self.at.min(bytes.len())];
        self.push(Token::Quoted(text), text);
    }

    fn parameter(&mut self) {
        let start = self.at;
        self.at += 1;
        while self.rest().first().is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        let text = &self.sql[start..self.at];
        self.push(Token::Punct('$'), text);
    }

    /// `$tag$ … $tag$` (docs §4.1.2.4); a lone `$` is an operator character.
    fn dollar_string(&mut self) {
        let tag_len = self.rest()[1..]
            .iter()
            .position(|&b| b == b'$')
            .filter(|&n| self.rest()[1..=n].iter().all(|&b| is_word_byte(b)));
        let Some(n) = tag_len else {
            self.at += 1;
            self.push(Token::Punct('$'), "$");
            return;
        };
        let tag = &self.sql[self.at..self.at + n + 2];
        let body = self.at + tag.len();
        self.at = self.sql[body..]
            .find(tag)
            .map_or(self.sql.len(), |end| body + end + tag.len());
        self.push(Token::Constant, "?");
    }

    /// Decimal, exponent, hexadecimal/octal/binary and `_`-grouped forms.
    fn number(&mut self) {
        let mut last = 0u8;
        while let Some(&b) = self.rest().first() {
            let sign_of_exponent = matches!(b, b'+' | b'-') && matches!(last, b'e' | b'E');
            if !(b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || sign_of_exponent) {
                break;
            }
            last = b;
            self.at += 1;
        }
        self.push(Token::Constant, "?");
    }

    fn word(&mut self) {
        let start = self.at;
        while self.rest().first().is_some_and(|&b| is_word_byte(b)) {
            self.at += 1;
        }
        let word = &self.sql[start..self.at];
        // Prefixed string constants: E'…', B'…', X'…', N'…', U&'…'.
        let rest = self.rest();
        let prefix =
            word.len() == 1 && matches!(word.as_bytes()[0] | 0x20, b'e' | b'b' | b'x' | b'n');
        if prefix && rest.first() == Some(&b'\'') {
            return self.string(word.eq_ignore_ascii_case("e"));
        }
        if word.eq_ignore_ascii_case("u") && rest.starts_with(b"&'") {
            self.at += 1;
            return self.string(false);
        }
        self.push(Token::Word(word), word);
    }
}

fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_word_byte(b: u8) -> bool {
    is_word_start(b) || b.is_ascii_digit() || b == b'$'
}

fn is_word(token: &Token<'_>, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.eq_ignore_ascii_case(word))
}

/// The statement's operation: its first keyword, or for `WITH …` the
/// first top-level `SELECT`/`INSERT`/`UPDATE`/`DELETE`/`MERGE`.
fn operation(tokens: &[Token<'_>]) -> Option<String> {
    let Token::Word(first) = tokens.first()? else {
        return None;
    };
    if !first.eq_ignore_ascii_case("with") {
        return Some(first.to_ascii_uppercase());
    }
    let mut depth = 0i32;
    for token in tokens {
        match token {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') => depth -= 1,
            Token::Word(w) if depth == 0 => {
                let upper = w.to_ascii_uppercase();
                if matches!(
                    upper.as_str(),
                    "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "MERGE"
                ) {
                    return Some(upper);
                }
            }
            _ => {}
        }
    }
    Some("WITH".to_owned())
}

/// The one table the statement names, if exactly one.
fn collection(operation: &str, tokens: &[Token<'_>]) -> Option<String> {
    let after = |keyword: &str, skip: &[&str]| -> Option<String> {
        let at = tokens.iter().position(|t| is_word(t, keyword))? + 1;
        let mut rest = &tokens[at..];
        while rest
            .first()
            .is_some_and(|t| skip.iter().any(|s| is_word(t, s)))
        {
            rest = &rest[1..];
        }
        table_name(rest).map(|(name, _)| name)
    };
    match operation {
        "SELECT" | "WITH" => select_table(tokens),
        "INSERT" => after("into", &[]),
        "UPDATE" => after("update", &["only"]),
        "DELETE" | "MERGE" => after(
            if operation == "DELETE" {
                "from"
            } else {
                "into"
            },
            &["only"],
        ),
        "COPY" => after("copy", &[]),
        "TRUNCATE" => after("truncate", &["table", "only"]),
        "LOCK" => after("lock", &["table", "only"]),
        "CREATE" | "DROP" | "ALTER" => {
            let table = tokens.get(1).is_some_and(|t| is_word(t, "table"));
            let skip = ["if", "not", "exists", "only"];
            table.then(|| after("table", &skip)).flatten()
        }
        _ => None,
    }
}

/// A possibly schema-qualified name at the start of `tokens`, and how many
/// tokens it took.
fn table_name<'a>(tokens: &[Token<'a>]) -> Option<(String, usize)> {
    let part = |t: &Token<'a>| -> Option<&'a str> {
        match *t {
            Token::Word(w) => Some(w),
            Token::Quoted(q) => Some(q),
            _ => None,
        }
    };
    let mut name = part(tokens.first()?)?.to_owned();
    let mut used = 1;
    while let (Some(Token::Punct('.')), Some(next)) = (tokens.get(used), tokens.get(used + 1)) {
        name.push('.');
        name.push_str(part(next)?);
        used += 2;
    }
    Some((name, used))
}

/// Tables after every `FROM` (a comma list) and `JOIN`: the one name when
/// they are all the same table. A subquery in `FROM` is looked into.
fn select_table(tokens: &[Token<'_>]) -> Option<String> {
    let mut tables: Vec<String> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let keyword = is_word(&tokens[i], "from") || is_word(&tokens[i], "join");
        i += 1;
        if !keyword {
            continue;
        }
        while let Some((name, used)) = table_name(&tokens[i..]) {
            tables.push(name);
            i += used;
            // An alias (`users u`, `users AS u`), then maybe `, next`.
            if tokens.get(i).is_some_and(|t| is_word(t, "as")) {
                i += 1;
            }
            let alias = |t: &Token<'_>| matches!(t, Token::Word(_) | Token::Quoted(_));
            if tokens
                .get(i)
                .is_some_and(|t| alias(t) && !is_clause_keyword(t))
            {
                i += 1;
            }
            if tokens.get(i) != Some(&Token::Punct(',')) {
                break;
            }
            i += 1;
        }
    }
    let first = tables.first()?;
    tables.iter().all(|t| t == first).then(|| first.clone())
}

/// Words that end a table reference in `FROM`.
fn is_clause_keyword(token: &Token<'_>) -> bool {
    const KEYWORDS: [&str; 20] = [
        "where",
        "join",
        "inner",
        "left",
        "right",
        "full",
        "cross",
        "natural",
        "on",
        "using",
        "group",
        "order",
        "limit",
        "offset",
        "having",
        "union",
        "except",
        "intersect",
        "for",
        "window",
    ];
    KEYWORDS.iter().any(|k| is_word(token, k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> Statement {
        let mut q = parse(sql);
        assert_eq!(q.statements.len(), 1, "{sql}: {q:?}");
        q.statements.remove(0)
    }

    #[test]
    fn constants_become_placeholders_and_comments_go() {
        let cases = [
            (
                "SELECT * FROM users WHERE id = 42",
                "SELECT * FROM users WHERE id = ?",
            ),
            (
                "select 'it''s', E'a\\'b', 1.5e-3, .5, 0x1F, 1_000",
                "select ?, ?, ?, ?, ?, ?",
            ),
            ("SELECT $$secret$$, $tag$x $$ y$tag$", "SELECT ?, ?"),
            (
                "SELECT B'101', X'ff', U&'d\\0061t', N'x'",
                "SELECT ?, ?, ?, ?",
            ),
            (
                "SELECT name FROM users WHERE id = $1",
                "SELECT name FROM users WHERE id = $1",
            ),
            (
                "SELECT \"Weird\"\"Name\" FROM t1 -- 'x'\n",
                "SELECT \"Weird\"\"Name\" FROM t1",
            ),
            ("SELECT /* a /* nested */ 'x' */ 1", "SELECT ?"),
            ("SELECT   a\n\t,b FROM t", "SELECT a ,b FROM t"),
            ("SELECT 'unterminated secret", "SELECT ?"),
            ("SELECT a$b, x::int FROM t", "SELECT a$b, x::int FROM t"),
        ];
        for (sql, expected) in cases {
            assert_eq!(&*one(sql).text, expected, "{sql}");
        }
    }

    #[test]
    fn operation_and_the_one_table() {
        let cases: [(&str, &str, Option<&str>); 14] = [
            ("SELECT * FROM users WHERE id = 1", "SELECT", Some("users")),
            (
                "select u.name from public.users u where u.id=$1",
                "SELECT",
                Some("public.users"),
            ),
            (
                "SELECT * FROM users u JOIN orders o ON o.u = u.id",
                "SELECT",
                None,
            ),
            ("SELECT * FROM a, b", "SELECT", None),
            ("SELECT 1", "SELECT", None),
            (
                "INSERT INTO users (id, name) VALUES (1, 'x')",
                "INSERT",
                Some("users"),
            ),
            ("UPDATE ONLY users SET name = 'x'", "UPDATE", Some("users")),
            (
                "DELETE FROM \"Users\" WHERE id = 1",
                "DELETE",
                Some("\"Users\""),
            ),
            ("COPY users FROM STDIN", "COPY", Some("users")),
            (
                "CREATE TABLE IF NOT EXISTS users (id int)",
                "CREATE",
                Some("users"),
            ),
            ("CREATE INDEX i ON users (id)", "CREATE", None),
            (
                "WITH x AS (SELECT * FROM users) SELECT * FROM x",
                "SELECT",
                None,
            ),
            ("begin", "BEGIN", None),
            (
                "SELECT * FROM (SELECT * FROM users) AS s",
                "SELECT",
                Some("users"),
            ),
        ];
        for (sql, operation, table) in cases {
            let s = one(sql);
            assert_eq!(s.operation.as_deref(), Some(operation), "{sql}");
            assert_eq!(s.collection.as_deref(), table, "{sql}");
        }
    }

    #[test]
    fn a_simple_query_splits_into_statements() {
        let q = parse("BEGIN; INSERT INTO t VALUES ('a;b'); COMMIT;;");
        let texts: Vec<_> = q.statements.iter().map(|s| &*s.text).collect();
        assert_eq!(texts, ["BEGIN", "INSERT INTO t VALUES (?)", "COMMIT"]);
        assert!(parse(" ; -- nothing").statements.is_empty());
    }

    #[test]
    fn sqlcommenter_traceparent_leading_or_trailing() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        for sql in [
            format!("/*traceparent='{tp}'*/ SELECT 1"),
            format!("SELECT 1 /*application='x',traceparent='{tp}'*/"),
            format!("SELECT 1; /*traceparent='{tp}'*/"),
        ] {
            let context = parse(&sql).traceparent.expect(&sql);
            assert_eq!(
                context.trace_id.to_hex(),
                *b"0af7651916cd43dd8448eb211c80319c"
            );
            assert!(context.sampling.is_sampled());
        }
        let middle = format!("SELECT /*traceparent='{tp}'*/ 1");
        assert_eq!(parse(&middle).traceparent, None, "only leading or trailing");
        assert_eq!(parse("/*traceparent='00-bad'*/ SELECT 1").traceparent, None);
    }
}
