//! Secret references in config strings: [`SecretTemplate`] and its resolution to a [`Secret`]
//! through a [`Resolver`].
//!
//! A secret-bearing config value is a template: literal text mixed with references
//!
//! - `${env:NAME}`: the daemon's environment variable `NAME` (used as is, not trimmed);
//! - `${file:PATH}`: the content of a file, surrounding whitespace trimmed; a leading `~/` means
//!   the home directory; on unix the file must not be accessible by group or others (`chmod 600`);
//!   at most 64 KiB;
//! - `${secret:NAME}`: a user secret set with `tok secret set NAME`, from the daemon's encrypted
//!   store;
//! - `${cmd:PROGRAM ARGS...}`: the standard output of a command, trimmed. The command line is split
//!   on whitespace with simple quoting (`'...'` is literal, `"..."` honours `\"` and `\\` only);
//!   there is no shell, no variable or glob expansion. A `}` inside quotes does not end the
//!   reference. The command gets no stdin, must exit 0 and must finish within 30 s;
//! - `${provider:NAME}`: provider `NAME`'s current token, through that provider's cache (valid
//!   for at least 15 s); the config refuses references to unknown providers and cycles;
//! - `${jwt}`: the JWT the provider signs for this request from its own `jwt` table (kind
//!   `http` only; the config refuses it elsewhere).
//!
//! `$${` writes a literal `${`; any other `${` must start a complete, valid reference. A `$` not
//! followed by `{` is literal.
//!
//! - this module: the template type and its parsing ([`SecretTemplate::parse`]);
//! - `parse`: the reference syntax and the command-line splitting of `${cmd:…}`;
//! - [`resolve`]: the [`Resolver`] (the environment, the store's user secrets, the command
//!   timeout, other providers' tokens: passed in, never global) and the checks on the resolved
//!   value (non-empty, no control characters: it becomes an HTTP header);
//! - `file`: reading `${file:…}` and who may change the file (the platform-file rule);
//! - `command`: running `${cmd:…}`;
//! - `error`: [`ResolveError`], the error messages.
//!
//! Nothing here logs, and no resolved value nor literal template text goes into an error or a
//! `Debug` output.

mod command;
mod error;
mod file;
mod parse;
pub mod resolve;
#[cfg(test)]
mod test_support;

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

pub use self::command::CMD_TIMEOUT;
pub use self::error::ResolveError;
pub use self::file::MAX_FILE_SIZE;
pub use self::resolve::{PROVIDER_MIN_TTL, ResolveOptions, Resolver, TokenFailure, TokenSource};

/// A parsed secret template: literal text and references, in order.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretTemplate {
    segments: Vec<Segment>,
}

#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Literal text; it may itself be the secret, hence zeroized and never shown.
    Literal(Zeroizing<String>),
    Env(String),
    File(String),
    Cmd(CmdRef),
    /// A user secret from the store, by name.
    Secret(String),
    /// Another provider's current token, by provider name.
    Provider(String),
    /// The JWT signed for this request from the provider's `jwt` table.
    Jwt,
}

#[derive(Clone, PartialEq, Eq)]
pub(crate) struct CmdRef {
    pub(crate) program: String,
    pub(crate) args: Vec<String>,
}

impl Segment {
    /// How the segment is named in error messages: the reference, never a value.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Literal(_) => "the literal text of the secret".to_owned(),
            Self::Env(name) => format!("${{env:{name}}}"),
            Self::File(path) => format!("${{file:{path}}}"),
            Self::Cmd(cmd) if cmd.args.is_empty() => format!("${{cmd:{}}}", cmd.program),
            // Arguments are left out: they are free text and could carry something sensitive.
            Self::Cmd(cmd) => format!("${{cmd:{} …}}", cmd.program),
            Self::Secret(name) => format!("${{secret:{name}}}"),
            Self::Provider(name) => format!("${{provider:{name}}}"),
            Self::Jwt => "${jwt}".to_owned(),
        }
    }
}

impl fmt::Debug for SecretTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretTemplate[")?;
        for (index, segment) in self.segments.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            match segment {
                // Only the length: literal text may be the secret itself.
                Segment::Literal(text) => write!(f, "literal({} bytes)", text.len())?,
                Segment::Env(name) => write!(f, "env:{name}")?,
                Segment::File(path) => write!(f, "file:{path}")?,
                Segment::Cmd(cmd) => write!(f, "cmd:{} ({} args)", cmd.program, cmd.args.len())?,
                Segment::Secret(name) => write!(f, "secret:{name}")?,
                Segment::Provider(name) => write!(f, "provider:{name}")?,
                Segment::Jwt => f.write_str("jwt")?,
            }
        }
        f.write_str("]")
    }
}

impl SecretTemplate {
    /// Parses a template. The error is a one-line human message naming the problem and its byte
    /// offset in `text`; it never quotes the text (which may contain a secret).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut segments = Vec::new();
        // Scratch buffer for the current literal run, sized up front so it never reallocates
        // (a reallocation would leave an unzeroized copy of the literal behind).
        let mut literal = Zeroizing::new(String::with_capacity(text.len()));
        let mut pos = 0;
        while let Some(offset) = text[pos..].find('$') {
            let at = pos + offset;
            literal.push_str(&text[pos..at]);
            let rest = &text[at..];
            if rest.starts_with("$${") {
                literal.push_str("${");
                pos = at + 3;
            } else if rest.starts_with("${") {
                flush_literal(&mut literal, &mut segments);
                let (segment, len) = parse::parse_reference(rest, at)?;
                segments.push(segment);
                pos = at + len;
            } else {
                literal.push('$');
                pos = at + 1;
            }
        }
        literal.push_str(&text[pos..]);
        flush_literal(&mut literal, &mut segments);
        Ok(Self { segments })
    }

    /// True when the template contains `${secret:NAME}`.
    #[must_use]
    pub fn refers_to_secret(&self, name: &str) -> bool {
        self.segments
            .iter()
            .any(|segment| matches!(segment, Segment::Secret(n) if n == name))
    }

    /// The providers whose tokens the template refers to (`${provider:NAME}`), in order.
    pub fn provider_refs(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Provider(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// True when the template contains `${jwt}`.
    #[must_use]
    pub fn refers_to_jwt(&self) -> bool {
        self.segments
            .iter()
            .any(|segment| matches!(segment, Segment::Jwt))
    }

    /// True when the template contains no reference at all: the secret is written in the config.
    #[must_use]
    pub fn is_literal(&self) -> bool {
        self.segments
            .iter()
            .all(|segment| matches!(segment, Segment::Literal(_)))
    }

    /// Names all the references (for the "resolved value is empty" error).
    fn describe_references(&self) -> String {
        let references: Vec<String> = self
            .segments
            .iter()
            .filter(|segment| !matches!(segment, Segment::Literal(_)))
            .map(Segment::describe)
            .collect();
        if references.is_empty() {
            "the literal secret".to_owned()
        } else {
            references.join(" + ")
        }
    }
}

/// Moves the current literal run (if any) into its own exactly-sized, zeroizing segment.
fn flush_literal(literal: &mut Zeroizing<String>, segments: &mut Vec<Segment>) {
    if !literal.is_empty() {
        segments.push(Segment::Literal(Zeroizing::new(
            literal.as_str().to_owned(),
        )));
        literal.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parse_literal() {
        let template = SecretTemplate::parse("plain-token $ and $$ too").unwrap();
        assert!(template.is_literal());
        assert_eq!(template.segments.len(), 1);
        assert!(
            matches!(&template.segments[0], Segment::Literal(t) if t.as_str() == "plain-token $ and $$ too")
        );
    }

    #[test]
    fn parse_empty_is_literal() {
        let template = SecretTemplate::parse("").unwrap();
        assert!(template.is_literal());
        assert!(template.segments.is_empty());
    }

    #[test]
    fn parse_single_references() {
        let env = SecretTemplate::parse("${env:API_KEY}").unwrap();
        assert!(!env.is_literal());
        assert!(matches!(&env.segments[..], [Segment::Env(n)] if n == "API_KEY"));

        let file = SecretTemplate::parse("${file:~/.config/gitlab.pat}").unwrap();
        assert!(matches!(&file.segments[..], [Segment::File(p)] if p == "~/.config/gitlab.pat"));

        let cmd = SecretTemplate::parse("${cmd:pass show  'work/api key' \"x\\\"y\\n\"}").unwrap();
        let [Segment::Cmd(cmd)] = &cmd.segments[..] else {
            panic!("expected one cmd segment: {cmd:?}");
        };
        assert_eq!(cmd.program, "pass");
        assert_eq!(cmd.args, ["show", "work/api key", "x\"y\\n"]);
    }

    #[test]
    fn parse_cmd_quoted_brace_and_adjacent_quotes() {
        let template = SecretTemplate::parse("${cmd:jq -r '.a}' a\"b c\"d ''}tail").unwrap();
        let [Segment::Cmd(cmd), Segment::Literal(tail)] = &template.segments[..] else {
            panic!("unexpected segments: {template:?}");
        };
        assert_eq!(cmd.program, "jq");
        assert_eq!(cmd.args, ["-r", ".a}", "ab cd", ""]);
        assert_eq!(tail.as_str(), "tail");
    }

    #[test]
    fn parse_mixed() {
        let template = SecretTemplate::parse("user:${env:USER_X}/${file:/tmp/t}!").unwrap();
        assert!(!template.is_literal());
        let debug = format!("{template:?}");
        assert_eq!(
            debug,
            "SecretTemplate[literal(5 bytes), env:USER_X, literal(1 bytes), file:/tmp/t, literal(1 bytes)]"
        );
    }

    #[test]
    fn parse_provider_and_jwt_references() {
        let template = SecretTemplate::parse("Bearer ${jwt}").unwrap();
        assert!(template.refers_to_jwt());
        assert_eq!(template.provider_refs().count(), 0);
        let template = SecretTemplate::parse("${provider:ci-oidc}x${provider:b}").unwrap();
        assert_eq!(
            template.provider_refs().collect::<Vec<_>>(),
            ["ci-oidc", "b"]
        );
        assert!(!template.refers_to_jwt());
        assert_eq!(
            format!("{template:?}"),
            "SecretTemplate[provider:ci-oidc, literal(1 bytes), provider:b]"
        );
        for bad in ["${provider:}", "${provider:a b}", "${jwt:x}", "${jwts}"] {
            assert!(SecretTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parse_escape() {
        let template = SecretTemplate::parse("a$${env:X}b").unwrap();
        assert!(template.is_literal());
        assert!(
            matches!(&template.segments[..], [Segment::Literal(t)] if t.as_str() == "a${env:X}b")
        );
    }

    #[test]
    fn parse_errors() {
        let cases = [
            ("abc${nope:X}", "byte 3", "does not start a valid reference"),
            ("${env}", "byte 0", "does not start a valid reference"),
            ("${}", "byte 0", "does not start a valid reference"),
            ("x${env:NAME", "byte 1", "no closing"),
            ("${file:/a/b", "byte 0", "no closing"),
            ("${cmd:echo hi", "byte 0", "no closing"),
            ("${secretstuff", "byte 0", "no closing"),
            ("${env:}", "byte 0", "empty variable name"),
            ("${env:A B}", "byte 0", "whitespace"),
            ("${file:}", "byte 0", "empty path"),
            ("${cmd:}", "byte 0", "no program"),
            ("${cmd:   }", "byte 0", "no program"),
            ("${cmd:'' x}", "byte 0", "no program"),
            ("${cmd:echo 'oops}", "byte 0", "unterminated quote"),
            (
                "ok ${env:A} ${bad}",
                "byte 12",
                "does not start a valid reference",
            ),
        ];
        for (text, position, problem) in cases {
            let error = SecretTemplate::parse(text).expect_err(text);
            assert!(error.contains(position), "{text}: {error}");
            assert!(error.contains(problem), "{text}: {error}");
        }
    }

    #[test]
    fn parse_error_does_not_quote_the_text() {
        let error = SecretTemplate::parse("hunter2${hunter3").unwrap_err();
        assert!(!error.contains("hunter"), "{error}");
    }

    #[test]
    fn debug_never_shows_literal_text() {
        let template = SecretTemplate::parse("sk-live-hunter2-${env:SUFFIX}").unwrap();
        let debug = format!("{template:?} {:?}", Some(&template));
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("env:SUFFIX"), "{debug}");
        assert!(debug.contains("literal(16 bytes)"), "{debug}");
    }

    #[test]
    fn debug_never_shows_command_arguments() {
        let template = SecretTemplate::parse("${cmd:curl -u me:hunter2 x}").unwrap();
        let debug = format!("{template:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("cmd:curl (3 args)"), "{debug}");
    }
}
