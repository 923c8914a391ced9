//! Customer names in the form used for matching.

use super::id::to_half_width;

/// Chinese, Japanese and Korean characters, between which a space means nothing.
fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x2E80..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF | 0x20000..=0x3134F)
}

/// Half-width, trimmed, inner whitespace collapsed to one space (and dropped next to
/// a Chinese character, where it is only a typing habit), ASCII upper-cased, and the
/// many middle-dot look-alikes of transliterated names unified, so that the same name
/// typed on different systems compares equal.
pub fn normalize_name(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut pending_space = false;
    for c in raw.chars().map(to_half_width) {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        let after_cjk = out.chars().last().is_some_and(is_cjk);
        if pending_space && !is_cjk(c) && !after_cjk {
            out.push(' ');
        }
        pending_space = false;
        let c = match c {
            '·' | '•' | '・' | '･' | '‧' | '∙' => '·',
            other => other.to_ascii_uppercase(),
        };
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_typed_differently_compare_equal() {
        let table = [
            ("张伟", "张伟"),
            (" 张伟 ", "张伟"),
            ("张\u{3000}伟", "张伟"),
            ("张 伟", "张伟"),
            ("欧阳 Na", "欧阳NA"),
            ("Zhang  Wei", "ZHANG WEI"),
            ("ｚｈａｎｇ ｗｅｉ", "ZHANG WEI"),
            ("阿卜杜•热合曼", "阿卜杜·热合曼"),
            ("阿卜杜・热合曼", "阿卜杜·热合曼"),
        ];
        for (raw, normalized) in table {
            assert_eq!(normalize_name(raw), normalized, "{raw}");
        }
    }
}
