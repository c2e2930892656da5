//! The reference syntax: `${env:NAME}`, `${file:PATH}`, `${secret:NAME}`, `${provider:NAME}`,
//! `${cmd:PROGRAM ARGS...}` and `${jwt}`, and the splitting of a command line into words with
//! simple quoting (no shell).

use tokend_protocol::{NAME_RULE, is_valid_name};

use super::{CmdRef, Segment};

const REFERENCE_FORMS: &str = "${env:NAME}, ${file:PATH}, ${secret:NAME}, ${provider:NAME}, \
     ${cmd:PROGRAM ARGS...} or ${jwt}";

/// Parses the reference starting at the `${` at the start of `rest` (`at` is its offset in the
/// whole template, for messages). Returns the segment and the length consumed, `}` included.
pub(super) fn parse_reference(rest: &str, at: usize) -> Result<(Segment, usize), String> {
    let body = &rest[2..];
    let Some(colon) = body.find([':', '}']) else {
        return Err(format!(
            "the reference starting at byte {at} has no closing `}}`; \
             write $${{ for a literal ${{"
        ));
    };
    let scheme = &body[..colon];
    if scheme == "jwt" && body.as_bytes()[colon] == b'}' {
        // `${jwt}`: the signed JWT of the provider's own `jwt` table.
        return Ok((Segment::Jwt, 2 + colon + 1));
    }
    let not_a_reference = || {
        format!(
            "`${{` at byte {at} does not start a valid reference (expected {REFERENCE_FORMS}); \
             write $${{ for a literal ${{"
        )
    };
    if body.as_bytes()[colon] != b':' {
        return Err(not_a_reference());
    }
    let value_start = colon + 1;
    let value = &body[value_start..];
    match scheme {
        "secret" | "provider" => {
            let Some(close) = value.find('}') else {
                return Err(format!(
                    "the ${{{scheme}:…}} reference at byte {at} has no closing `}}`"
                ));
            };
            let name = &value[..close];
            if !is_valid_name(name) {
                return Err(format!(
                    "the name of the ${{{scheme}:…}} reference at byte {at} must be non-empty; \
                     {NAME_RULE}"
                ));
            }
            let segment = if scheme == "secret" {
                Segment::Secret(name.to_owned())
            } else {
                Segment::Provider(name.to_owned())
            };
            Ok((segment, 2 + value_start + close + 1))
        }
        "env" | "file" => {
            let Some(close) = value.find('}') else {
                return Err(format!(
                    "the ${{{scheme}:…}} reference at byte {at} has no closing `}}`"
                ));
            };
            let inner = &value[..close];
            let consumed = 2 + value_start + close + 1;
            if scheme == "env" {
                if inner.is_empty() {
                    return Err(format!(
                        "the ${{env:…}} reference at byte {at} has an empty variable name"
                    ));
                }
                if inner.contains(|c: char| c.is_whitespace() || c == '=' || c == '\0') {
                    return Err(format!(
                        "the variable name of the ${{env:…}} reference at byte {at} contains \
                         whitespace, `=` or NUL"
                    ));
                }
                Ok((Segment::Env(inner.to_owned()), consumed))
            } else {
                if inner.is_empty() {
                    return Err(format!(
                        "the ${{file:…}} reference at byte {at} has an empty path"
                    ));
                }
                if inner.contains('\0') {
                    return Err(format!(
                        "the path of the ${{file:…}} reference at byte {at} contains NUL"
                    ));
                }
                Ok((Segment::File(inner.to_owned()), consumed))
            }
        }
        "cmd" => {
            let (mut words, close) = split_command(value).map_err(|problem| match problem {
                SplitError::UnterminatedQuote => {
                    format!("the ${{cmd:…}} reference at byte {at} has an unterminated quote")
                }
                SplitError::Unclosed => {
                    format!("the ${{cmd:…}} reference at byte {at} has no closing `}}`")
                }
            })?;
            if words.is_empty() || words[0].is_empty() {
                return Err(format!(
                    "the ${{cmd:…}} reference at byte {at} has no program"
                ));
            }
            let program = words.remove(0);
            let consumed = 2 + value_start + close + 1;
            Ok((
                Segment::Cmd(CmdRef {
                    program,
                    args: words,
                }),
                consumed,
            ))
        }
        _ => Err(not_a_reference()),
    }
}

enum SplitError {
    UnterminatedQuote,
    Unclosed,
}

/// Splits a command line up to its unquoted closing `}`: words separated by whitespace,
/// `'...'` taken literally, `"..."` with `\"` and `\\` as the only escapes (any other backslash is
/// kept, so `"a\nb"` reaches the program as `a\nb`). Returns the words and the offset of the `}`.
fn split_command(text: &str) -> Result<(Vec<String>, usize), SplitError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.char_indices().peekable();
    while let Some((index, c)) = chars.next() {
        match c {
            '}' => {
                if in_word {
                    words.push(word);
                }
                return Ok((words, index));
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err(SplitError::UnterminatedQuote),
                        Some((_, '\'')) => break,
                        Some((_, ch)) => word.push(ch),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err(SplitError::UnterminatedQuote),
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.peek() {
                            Some(&(_, escaped @ ('"' | '\\'))) => {
                                word.push(escaped);
                                chars.next();
                            }
                            _ => word.push('\\'),
                        },
                        Some((_, ch)) => word.push(ch),
                    }
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    Err(SplitError::Unclosed)
}
