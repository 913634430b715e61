//! Line parsing: words, quoting and output redirection.
//!
//! Design: a small hand-written scanner, because the grammar is tiny and every malformed line must
//! become a clear error instead of a guess. Words split on blanks; `'...'` is literal; `"..."` keeps
//! blanks and understands `\"` and `\\`; outside quotes a backslash escapes the next character;
//! an unquoted `#` at the start of a word begins a comment. An unquoted `>` or `>>` (also when glued
//! to a word, as in `echo hi>f`) redirects the command's output to the next word; at most one per
//! line. An empty line parses to no command.

use alloc::string::String;
use alloc::vec::Vec;

/// How redirected output reaches its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectMode {
    /// `>`: create or truncate.
    Truncate,
    /// `>>`: create or append.
    Append,
}

/// One parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The command name and its arguments.
    pub words: Vec<String>,
    /// Where the output goes instead of the console.
    pub redirect: Option<(RedirectMode, String)>,
}

/// Why a line could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    UnterminatedQuote,
    /// A backslash at the very end of the line.
    TrailingBackslash,
    /// `>` or `>>` with no file name after it.
    MissingRedirectTarget,
    /// More than one redirection on a line.
    DoubleRedirect,
}

impl ParseError {
    pub const fn as_str(self) -> &'static str {
        match self {
            ParseError::UnterminatedQuote => "unterminated quote",
            ParseError::TrailingBackslash => "backslash at end of line",
            ParseError::MissingRedirectTarget => "missing file name after redirection",
            ParseError::DoubleRedirect => "more than one redirection",
        }
    }
}

enum Token {
    Word(String),
    Redirect(RedirectMode),
}

fn tokens(line: &str) -> Result<Vec<Token>, ParseError> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    let mut word = String::new();
    // A word exists once anything (even an empty quoted string) was seen.
    let mut in_word = false;
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                if in_word {
                    out.push(Token::Word(core::mem::take(&mut word)));
                    in_word = false;
                }
            }
            '#' if !in_word => break,
            '>' => {
                if in_word {
                    out.push(Token::Word(core::mem::take(&mut word)));
                    in_word = false;
                }
                let mode = if chars.peek() == Some(&'>') {
                    chars.next();
                    RedirectMode::Append
                } else {
                    RedirectMode::Truncate
                };
                out.push(Token::Redirect(mode));
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(ParseError::UnterminatedQuote),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\')) => word.push(e),
                            Some(other) => {
                                word.push('\\');
                                word.push(other);
                            }
                            None => return Err(ParseError::UnterminatedQuote),
                        },
                        Some(c) => word.push(c),
                        None => return Err(ParseError::UnterminatedQuote),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(chars.next().ok_or(ParseError::TrailingBackslash)?);
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        out.push(Token::Word(word));
    }
    Ok(out)
}

/// Parse one line; `Ok(None)` for a blank or comment-only line.
pub fn parse(line: &str) -> Result<Option<Line>, ParseError> {
    let mut words = Vec::new();
    let mut redirect = None;
    let mut toks = tokens(line)?.into_iter();
    while let Some(t) = toks.next() {
        match t {
            Token::Word(w) => words.push(w),
            Token::Redirect(mode) => {
                let Some(Token::Word(target)) = toks.next() else {
                    return Err(ParseError::MissingRedirectTarget);
                };
                if redirect.replace((mode, target)).is_some() {
                    return Err(ParseError::DoubleRedirect);
                }
            }
        }
    }
    if words.is_empty() && redirect.is_none() {
        return Ok(None);
    }
    Ok(Some(Line { words, redirect }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn words(line: &str) -> Vec<String> {
        parse(line).unwrap().unwrap().words
    }

    #[test]
    fn quoting_and_escapes() {
        assert_eq!(words("echo  a   b"), ["echo", "a", "b"]);
        assert_eq!(words(r#"echo "a b" 'c  d' e\ f"#), ["echo", "a b", "c  d", "e f"]);
        assert_eq!(words(r#"echo "say \"hi\" \\ \n""#), ["echo", r#"say "hi" \ \n"#]);
        assert_eq!(words(r#"echo '' "" x"#), ["echo", "", "", "x"]);
        assert_eq!(words("echo a'b'\"c\"d"), ["echo", "abcd"]);
        assert_eq!(words("echo a#b # comment"), ["echo", "a#b"]);
        assert_eq!(words(r"echo \> \#"), ["echo", ">", "#"]);
        assert_eq!(words("echo '>'"), ["echo", ">"]);
    }

    #[test]
    fn redirection() {
        let l = parse("echo hi > /f").unwrap().unwrap();
        assert_eq!(
            (l.words, l.redirect),
            (vec!["echo".into(), "hi".into()], Some((RedirectMode::Truncate, "/f".into())))
        );
        let l = parse("echo hi>>/f there").unwrap().unwrap();
        assert_eq!(
            (l.words, l.redirect),
            (vec!["echo".into(), "hi".into(), "there".into()], Some((RedirectMode::Append, "/f".into())))
        );
        let l = parse("echo 'a b'>\"my file\"").unwrap().unwrap();
        assert_eq!(l.redirect, Some((RedirectMode::Truncate, "my file".into())));
    }

    #[test]
    fn blank_and_bad_lines() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("   # only a comment"), Ok(None));
        assert_eq!(parse("echo 'open"), Err(ParseError::UnterminatedQuote));
        assert_eq!(parse("echo \"open"), Err(ParseError::UnterminatedQuote));
        assert_eq!(parse("echo x\\"), Err(ParseError::TrailingBackslash));
        assert_eq!(parse("echo x >"), Err(ParseError::MissingRedirectTarget));
        assert_eq!(parse("echo x > >> f"), Err(ParseError::MissingRedirectTarget));
        assert_eq!(parse("echo x > a > b"), Err(ParseError::DoubleRedirect));
    }
}
