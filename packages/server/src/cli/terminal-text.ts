/**
 * Text as a terminal shows it. A table cell holds attribution values that whoever calls the app sets
 * (x-tollgate-feature, a JSONL line's customer_id): a newline there would break its row, and an ESC would
 * start a terminal escape sequence (colours, a title, a hyperlink) the terminal runs. So control characters,
 * and the bidi controls that reorder what is shown, are written as escapes (\n, \t, \u001b).
 */
export function printable(text: string): string {
  return text.replace(/[\p{Cc}\u202A-\u202E\u2066-\u2069]/gu, (c) => {
    if (c === "\n") return "\\n";
    if (c === "\t") return "\\t";
    if (c === "\r") return "\\r";
    return `\\u${c.codePointAt(0)!.toString(16).padStart(4, "0")}`;
  });
}

const graphemes = new Intl.Segmenter("en", { granularity: "grapheme" });

/** A character a terminal shows two columns wide: emoji, and East Asian wide and fullwidth characters. */
const WIDE =
  /\p{Emoji_Presentation}|\p{Extended_Pictographic}\uFE0F|\p{Regional_Indicator}|[\u1100-\u115F\u2E80-\u303E\u3041-\u33FF\u3400-\u4DBF\u4E00-\u9FFF\uA000-\uA4CF\uA960-\uA97F\uAC00-\uD7A3\uF900-\uFAFF\uFE10-\uFE19\uFE30-\uFE6F\uFF00-\uFF60\uFFE0-\uFFE6\u{1F300}-\u{1F64F}\u{1F900}-\u{1F9FF}\u{20000}-\u{3FFFD}]/u;
/** Marks and format characters alone (a combining accent, a zero-width joiner): no column of their own. */
const ZERO_WIDTH = /^[\p{Mn}\p{Me}\p{Cf}]+$/u;

/**
 * Columns `text` takes in a terminal, counted per grapheme (what one sees as one character): é written as
 * e + U+0301 is one column, 表 and 🚀 are two. String length counts UTF-16 units, which misaligns tables.
 */
export function displayWidth(text: string): number {
  let width = 0;
  for (const { segment } of graphemes.segment(text)) {
    if (ZERO_WIDTH.test(segment)) continue;
    width += WIDE.test(segment) ? 2 : 1;
  }
  return width;
}
