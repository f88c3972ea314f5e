//! YAML text -> raw structs, with every problem of the file at once.
//!
//! serde stops at the first unknown key or wrong type. To report them all,
//! the text is read into a YAML tree first (only a syntax error stops
//! there), then deserialized; each error is located in the tree by its
//! path, recorded in YAML words, and its node removed, and the rest is
//! deserialized again, until it passes (at most [`MAX_PROBLEMS`] rounds).
//! The removed keys fall back to their defaults, so validation still checks
//! everything else; its problems at a removed path are dropped (the type
//! problem already speaks for that key).

use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, Unexpected, Visitor};
use serde_norway::Value;

use super::problems::ConfigError;

/// Rounds of remove-and-retry before giving up on the rest of the file.
const MAX_PROBLEMS: usize = 64;

/// The raw config in `text` and the problems found reading it. `T` is
/// `Default`: an empty document is the default config.
pub(super) fn read<T: DeserializeOwned + Default>(text: &str) -> (T, Vec<ConfigError>) {
    if text.trim().is_empty() {
        return (T::default(), Vec::new());
    }
    let mut tree: Value = match serde_norway::from_str(text) {
        Ok(Value::Null) => return (T::default(), Vec::new()),
        Ok(tree) => tree,
        Err(error) => {
            let problem = ConfigError {
                path: ".".into(),
                message: format!("not valid YAML: {error}"),
            };
            return (T::default(), vec![problem]);
        }
    };
    let mut problems: Vec<ConfigError> = Vec::new();
    // List items removed so far, (list path, index in the file), so later
    // problems in the same list are reported at their index in the file.
    let mut gone: Vec<(String, usize)> = Vec::new();
    for _ in 0..MAX_PROBLEMS {
        // Through text again, so that the error carries its path.
        let again = serde_norway::to_string(&tree).unwrap_or_default();
        let error = match serde_norway::from_str::<T>(&again) {
            Ok(raw) => return (raw, problems),
            Err(error) => error,
        };
        let (path, detail) = split_path(&error.to_string());
        let mut problem = describe(&path, &detail);
        let in_tree = segments(&problem.path);
        let removed = remove(&mut tree, &in_tree);
        problem.path = in_file(&in_tree, &mut gone);
        if !removed || problems.iter().any(|seen| seen.path == problem.path) {
            problems.push(problem);
            break;
        }
        problems.push(problem);
    }
    (T::default(), problems)
}

/// The path in the file of a node at `path` in the tree, whose lists lost
/// the items in `gone`; when the node is itself a list item, it is added
/// to `gone`.
fn in_file(path: &[Segment], gone: &mut Vec<(String, usize)>) -> String {
    let mut text = String::new();
    for (n, segment) in path.iter().enumerate() {
        match segment {
            Segment::Key(key) => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(key);
            }
            Segment::Index(i) => {
                // Each earlier removal at or before this position shifted it.
                let mut index = *i;
                let mut earlier: Vec<usize> = gone
                    .iter()
                    .filter(|(list, _)| *list == text)
                    .map(|(_, at)| *at)
                    .collect();
                earlier.sort_unstable();
                for at in earlier {
                    if at <= index {
                        index += 1;
                    }
                }
                if n + 1 == path.len() {
                    gone.push((text.clone(), index));
                }
                text.push_str(&format!("[{index}]"));
            }
        }
    }
    if text.is_empty() { ".".into() } else { text }
}

/// For `#[serde(default, deserialize_with = "super::yaml::duration")]`:
/// a duration is YAML text (`500ms`), checked later by validation; a
/// number or anything else is refused in those words.
pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let expect = Expect {
        what: "a duration like 500ms or 10s",
        number: false,
    };
    Ok(d.deserialize_option(expect)?.map(|scalar| match scalar {
        Scalar::Text(text) => text,
        Scalar::Number(number) => number.to_string(),
    }))
}

/// For `#[serde(default, deserialize_with = "super::yaml::ratio")]`: a
/// sampling ratio is a number; its range is checked by validation.
pub(super) fn ratio<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let expect = Expect {
        what: "a number between 0 and 1",
        number: true,
    };
    Ok(d.deserialize_option(expect)?.map(|scalar| match scalar {
        Scalar::Number(number) => number,
        Scalar::Text(_) => f64::NAN,
    }))
}

/// A YAML scalar a field takes: text or a number.
enum Scalar {
    Text(String),
    Number(f64),
}

/// Accepts text, or numbers when `number`, and says `what` otherwise.
struct Expect {
    what: &'static str,
    number: bool,
}

impl Expect {
    fn number<E: de::Error>(self, value: f64, unexpected: Unexpected) -> Result<Option<Scalar>, E> {
        if self.number {
            Ok(Some(Scalar::Number(value)))
        } else {
            Err(E::invalid_type(unexpected, &self))
        }
    }
}

impl<'de> Visitor<'de> for Expect {
    type Value = Option<Scalar>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.what)
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        if self.number {
            Err(E::invalid_type(Unexpected::Str(text), &self))
        } else {
            Ok(Some(Scalar::Text(text.to_owned())))
        }
    }
    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        self.number(value, Unexpected::Float(value))
    }
    #[allow(clippy::cast_precision_loss)] // a ratio's whole numbers are 0 and 1
    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        self.number(value as f64, Unexpected::Unsigned(value))
    }
    #[allow(clippy::cast_precision_loss)]
    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        self.number(value as f64, Unexpected::Signed(value))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// `path: message at line L column C` -> (`path`, `message`); the path is
/// `.` for the top level.
fn split_path(text: &str) -> (String, String) {
    let text = text
        .rsplit_once(" at line ")
        .map_or(text, |(message, _)| message);
    match text.split_once(": ") {
        Some((path, message)) if !path.contains(' ') => (path.to_owned(), message.to_owned()),
        _ => (".".to_owned(), text.to_owned()),
    }
}

/// The problem in YAML words: an unknown key with the closest valid one,
/// or what was expected and what was found.
fn describe(path: &str, detail: &str) -> ConfigError {
    let key_path = |key: &str| {
        if path == "." {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    if let Some(rest) = detail.strip_prefix("unknown field `")
        && let Some((key, expected)) = rest.split_once('`')
    {
        let valid = quoted(expected);
        let message = match closest(key, &valid) {
            Some(near) => format!("unknown key; did you mean `{near}`?"),
            None if valid.is_empty() => "unknown key".to_owned(),
            None => format!("unknown key; valid keys here: {}", valid.join(", ")),
        };
        return ConfigError {
            path: key_path(key),
            message,
        };
    }
    if let Some(rest) = detail.strip_prefix("unknown variant `")
        && let Some((value, expected)) = rest.split_once('`')
    {
        let valid = quoted(expected);
        let message = match closest(value, &valid) {
            Some(near) => format!(
                "`{value}` is not one of {}; did you mean `{near}`?",
                valid.join(", ")
            ),
            None => format!("`{value}` is not one of {}", valid.join(", ")),
        };
        return ConfigError {
            path: path.to_owned(),
            message,
        };
    }
    let found_expected = detail
        .strip_prefix("invalid type: ")
        .or_else(|| detail.strip_prefix("invalid value: "))
        .and_then(|rest| rest.rsplit_once(", expected "));
    let message = match found_expected {
        Some((found, expected)) => {
            format!(
                "expected {}, found {}",
                yaml_words(expected),
                found_words(found)
            )
        }
        None => detail.to_owned(),
    };
    ConfigError {
        path: path.to_owned(),
        message,
    }
}

/// serde's (Rust) name of the expected type, in YAML terms.
fn yaml_words(expected: &str) -> String {
    let words = match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number (0 or more)",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        "a string" | "a borrowed string" | "a character" => "text",
        "a sequence" => "a list",
        "a map" => "a mapping (key: value lines)",
        other if other.starts_with("struct ") => "a mapping (key: value lines)",
        other if other.starts_with("a sequence") => "a list",
        other => other,
    };
    words.to_owned()
}

/// serde's description of what it found (`string "x"`, `integer `-3``).
fn found_words(found: &str) -> String {
    if let Some(text) = found.strip_prefix("string ") {
        return format!("the text {text}");
    }
    for (prefix, words) in [
        ("integer ", "the number "),
        ("floating point ", "the number "),
        ("boolean ", ""),
    ] {
        if let Some(value) = found.strip_prefix(prefix) {
            return format!("{words}{}", value.trim_matches('`'));
        }
    }
    match found {
        "sequence" => "a list".into(),
        "map" => "a mapping".into(),
        "unit value" => "nothing (an empty value)".into(),
        other => other.into(),
    }
}

/// The backquoted names in serde's "expected one of `a`, `b`".
fn quoted(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The valid name closest to `given`, when it is close enough to be a typo
/// (at most a third of its letters wrong).
fn closest<'a>(given: &str, valid: &[&'a str]) -> Option<&'a str> {
    valid
        .iter()
        .map(|name| (edit_distance(given, name), *name))
        .filter(|(distance, name)| *distance <= given.len().max(name.len()).div_ceil(3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

/// Levenshtein distance, counting a swap of two neighbours as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// The keys and indexes of a dotted path (`outbound.routes[1].listen`).
fn segments(path: &str) -> Vec<Segment> {
    if path == "." {
        return Vec::new();
    }
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut pieces = part.split('[');
        if let Some(key) = pieces.next().filter(|key| !key.is_empty()) {
            out.push(Segment::Key(key.to_owned()));
        }
        for index in pieces {
            match index.trim_end_matches(']').parse() {
                Ok(i) => out.push(Segment::Index(i)),
                Err(_) => out.push(Segment::Key(index.to_owned())),
            }
        }
    }
    out
}

enum Segment {
    Key(String),
    Index(usize),
}

/// Removes the node at `path`; false when there is none (or it is the
/// whole document).
fn remove(tree: &mut Value, path: &[Segment]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut node = tree;
    for segment in parents {
        let next = match (segment, node) {
            (Segment::Key(key), Value::Mapping(map)) => map.get_mut(key.as_str()),
            (Segment::Index(i), Value::Sequence(items)) => items.get_mut(*i),
            _ => None,
        };
        let Some(next) = next else {
            return false;
        };
        node = next;
    }
    match (last, node) {
        (Segment::Key(key), Value::Mapping(map)) => map.remove(key.as_str()).is_some(),
        (Segment::Index(i), Value::Sequence(items)) if *i < items.len() => {
            items.remove(*i);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_typos() {
        assert_eq!(edit_distance("nmae", "name"), 1);
        assert_eq!(edit_distance("idel", "idle"), 1);
        assert_eq!(edit_distance("upstrem", "upstream"), 1);
        assert_eq!(edit_distance("listen", "listen"), 0);
        assert_eq!(closest("nmae", &["name", "tags"]), Some("name"));
        assert_eq!(closest("zzzzzz", &["name", "tags"]), None);
    }

    #[test]
    fn paths_split_into_keys_and_indexes() {
        let keys = |path| {
            segments(path)
                .into_iter()
                .map(|s| match s {
                    Segment::Key(k) => k,
                    Segment::Index(i) => format!("#{i}"),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys("outbound.routes[1].listen"),
            ["outbound", "routes", "#1", "listen"]
        );
        assert_eq!(keys("."), Vec::<String>::new());
    }
}
