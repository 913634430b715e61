//! [`LineEditor`]: turns console bytes into command lines, with echo and simple editing.
//!
//! Design: the serial console delivers raw bytes and echoes nothing, so the shell echoes what it
//! accepts. Bytes are collected as bytes (a UTF-8 character arrives in pieces) and the finished line
//! is decoded lossily. Editing is what a serial terminal needs and nothing more: backspace/DEL erase
//! one character, Ctrl-U the line, Ctrl-C abandons it; CR, LF or CRLF end it. Other control bytes
//! are ignored, and a line stops growing at its limit (further bytes are dropped, not wrapped).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// Longest line kept, in bytes (two maximal paths and a command fit).
pub const MAX_LINE: usize = 4096;

/// What one byte did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Keep reading.
    More,
    /// A finished line (without its end-of-line).
    Line(String),
    /// Ctrl-C: the line was abandoned.
    Cancelled,
}

/// Collects one line at a time from console bytes.
#[derive(Debug, Default)]
pub struct LineEditor {
    buf: Vec<u8>,
    /// The previous byte was CR, so an LF right after it is part of the same line end.
    after_cr: bool,
}

impl LineEditor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed one byte; what it echoes goes to `echo`.
    pub fn feed(&mut self, b: u8, echo: &mut dyn Write) -> Input {
        let after_cr = core::mem::replace(&mut self.after_cr, b == b'\r');
        match b {
            b'\n' if after_cr => Input::More,
            b'\r' | b'\n' => {
                let _ = echo.write_char('\n');
                let line = String::from_utf8_lossy(&self.buf).into_owned();
                self.buf.clear();
                Input::Line(line)
            }
            0x08 | 0x7f => {
                // Erase one character: its UTF-8 continuation bytes and its first byte.
                while let Some(last) = self.buf.pop() {
                    if last & 0xc0 != 0x80 {
                        let _ = echo.write_str("\x08 \x08");
                        break;
                    }
                }
                Input::More
            }
            0x15 => {
                for _ in 0..String::from_utf8_lossy(&self.buf).chars().count() {
                    let _ = echo.write_str("\x08 \x08");
                }
                self.buf.clear();
                Input::More
            }
            0x03 => {
                let _ = echo.write_str("^C\n");
                self.buf.clear();
                Input::Cancelled
            }
            b if b < 0x20 => Input::More,
            b if self.buf.len() < MAX_LINE => {
                self.buf.push(b);
                // Echo a character once it is complete.
                if let Some(start) = self.buf.iter().rposition(|&c| c & 0xc0 != 0x80) {
                    if let Ok(ch) = core::str::from_utf8(&self.buf[start..]) {
                        let _ = echo.write_str(ch);
                    }
                }
                Input::More
            }
            _ => Input::More,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(ed: &mut LineEditor, bytes: &[u8], echo: &mut String) -> Vec<Input> {
        bytes.iter().map(|&b| ed.feed(b, echo)).filter(|i| *i != Input::More).collect()
    }

    #[test]
    fn lines_end_at_cr_lf_or_crlf_and_echo() {
        let mut ed = LineEditor::new();
        let mut echo = String::new();
        let got = feed_all(&mut ed, b"ls /\r\ncat x\recho y\n\n", &mut echo);
        let lines = ["ls /", "cat x", "echo y", ""].map(|s| Input::Line(s.into()));
        assert_eq!(got, lines);
        assert_eq!(echo, "ls /\ncat x\necho y\n\n");
    }

    #[test]
    fn editing_keys() {
        let mut ed = LineEditor::new();
        let mut echo = String::new();
        assert_eq!(feed_all(&mut ed, b"lss\x7f /\x08x\r", &mut echo), [Input::Line("ls x".into())]);
        assert_eq!(echo, "lss\x08 \x08 /\x08 \x08x\n");
        assert_eq!(feed_all(&mut ed, b"rm -r /\x15ls\r", &mut String::new()), [Input::Line("ls".into())]);
        assert_eq!(
            feed_all(&mut ed, b"oops\x03pwd\x1b\r", &mut String::new()),
            [Input::Cancelled, Input::Line("pwd".into())]
        );
        // Backspace on an empty line, and erasing a two-byte character whole.
        let mut echo = String::new();
        assert_eq!(feed_all(&mut ed, "\x7fé\x7fe\r".as_bytes(), &mut echo), [Input::Line("e".into())]);
        assert_eq!(echo, "é\x08 \x08e\n");
    }

    #[test]
    fn long_lines_stop_growing_and_bad_utf8_is_replaced() {
        let mut ed = LineEditor::new();
        let mut long = alloc::vec![b'a'; MAX_LINE + 100];
        long.push(b'\n');
        let got = feed_all(&mut ed, &long, &mut String::new());
        assert_eq!(got, [Input::Line("a".repeat(MAX_LINE))]);
        assert_eq!(feed_all(&mut ed, b"x\xff\r", &mut String::new()), [Input::Line("x\u{fffd}".into())]);
    }
}
