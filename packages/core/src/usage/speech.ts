// OpenAI's speech (`POST /v1/audio/speech`, text to audio). tts-1 and tts-1-hd bill the characters of the
// text sent, known from the request alone. gpt-4o-mini-tts bills tokens: text in, audio out. Its usage
// comes only in a stream of events (`stream_format: "sse"`, in `speech.audio.done`); the default answer
// is the audio's bytes, which say nothing of it, so that call's usage is estimated from its text.
import { type ExtractedUsage, emptyUsage, type NormalizedUsage } from "./types.js";

/**
 * Audio tokens a token-billed speech model makes per minute of speech: OpenAI estimates gpt-4o-mini-tts at
 * $0.015 a minute, which at its $12 per million audio tokens is 1,250 tokens.
 */
const AUDIO_TOKENS_PER_MINUTE = 1_250;
/** Characters spoken per second at speed 1, about 180 words a minute: what an estimate of the audio's length assumes. */
const SPOKEN_CHARS_PER_SECOND = 15;
/**
 * What a hold assumes of the audio: its text read at 2.5 characters a second at speed 1 (a sixth of an
 * ordinary pace: digits and symbols are read out as words, instructions may ask for pauses), plus 10 s of
 * its own (a short text's silences and breaths).
 */
const SLOWEST_CHARS_PER_SECOND = 2.5;
const HELD_EXTRA_SECONDS = 10;
/** OpenAI's range of `speed`. */
const MIN_SPEED = 0.25;
const MAX_SPEED = 4;

/** The characters of a speech request's text, as billed: its `input`'s Unicode code points (0 without one). */
export function speechCharacters(body: Record<string, unknown> | null): number {
  return codePoints(body?.input);
}

function codePoints(v: unknown): number {
  if (typeof v !== "string") return 0;
  let n = 0;
  for (const _ of v) n++;
  return n;
}

/** `speed` as OpenAI reads it: 1 when absent, kept within its range. */
function speedOf(body: Record<string, unknown> | null): number {
  const s = body?.speed;
  return typeof s === "number" && Number.isFinite(s) ? Math.min(MAX_SPEED, Math.max(MIN_SPEED, s)) : 1;
}

/** Audio tokens for `characters` read at `charsPerSecond` and the request's speed. */
function audioTokens(characters: number, charsPerSecond: number, speed: number): number {
  return Math.ceil(((characters / charsPerSecond / speed) * AUDIO_TOKENS_PER_MINUTE) / 60);
}

/**
 * A speech call's usage known from its request. On a model billed by the character (`byCharacters`):
 * exactly its characters. Else (tokens): its text at ~4 characters a token in (instructions included),
 * and the audio such text makes when spoken at an ordinary pace and the request's speed out; estimated.
 */
export function speechUsage(
  body: Record<string, unknown> | null,
  byCharacters: boolean,
): { usage: ExtractedUsage; estimated: boolean } {
  const characters = speechCharacters(body);
  if (byCharacters) {
    const usage = emptyUsage();
    usage.input_characters = characters;
    return { usage: { model: null, usage, usage_raw: { input_characters: characters } }, estimated: false };
  }
  const usage = emptyUsage();
  // All of them, as sent (not fieldText: a record field's first 256 units).
  const instructions = codePoints(body?.instructions);
  usage.input_uncached_tokens = Math.ceil((characters + instructions) / 4);
  usage.output_tokens = audioTokens(characters, SPOKEN_CHARS_PER_SECOND, speedOf(body));
  usage.output_audio_tokens = usage.output_tokens;
  return {
    usage: { model: null, usage, usage_raw: { estimated: true, characters, instructions } },
    estimated: true,
  };
}

/**
 * The most a speech request can cost, for a budget's hold: its characters (a model billed by them), and for
 * a token-billed model its text and instructions' most UTF-8 bytes (3 a UTF-16 unit) as tokens in, and its
 * text read at the slowest pace and the request's speed (1 at most), plus HELD_EXTRA_SECONDS, as audio
 * tokens out. Rates price what their model bills.
 */
export function speechWorstCase(body: Record<string, unknown> | null): NormalizedUsage {
  const usage = emptyUsage();
  const characters = speechCharacters(body);
  usage.input_characters = characters;
  const text = [body?.input, body?.instructions].filter((v): v is string => typeof v === "string");
  usage.input_uncached_tokens = text.reduce((n, t) => n + t.length * 3, 0);
  // A speed above 1 does not shorten the hold: OpenAI documented that speed does not work with
  // gpt-4o-mini-tts, whose audio is then as long as at speed 1. A slower speed lengthens it.
  const speed = Math.min(1, speedOf(body));
  usage.output_tokens = audioTokens(
    characters + HELD_EXTRA_SECONDS * SLOWEST_CHARS_PER_SECOND * speed,
    SLOWEST_CHARS_PER_SECOND,
    speed,
  );
  usage.output_audio_tokens = usage.output_tokens;
  return usage;
}
