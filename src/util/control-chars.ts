/**
 * C0 and C1 controls, DEL and the JavaScript line separators: what must never reach a rendered file, a log line or a
 * terminal unescaped. One definition, so every validator refuses the same set.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
export const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
export const CONTROL_CHARS_G = new RegExp(CONTROL_CHARS.source, 'g');
