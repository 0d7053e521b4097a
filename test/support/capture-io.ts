// A command's stdout and stderr captured as strings (stderr as a non-TTY, so progress prints plain lines).
export function captureIo() {
  let out = '';
  let err = '';
  return {
    io: { stdout: { write: (c: string) => (out += c) }, stderr: { write: (c: string) => (err += c), isTTY: false } },
    out: () => out,
    err: () => err,
  };
}
