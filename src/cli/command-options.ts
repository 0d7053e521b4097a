import { parseArgs, type ParseArgsConfig } from 'node:util';

type OptionsConfig = NonNullable<ParseArgsConfig['options']>;

/**
 * A command's options parsed strictly (no positionals); a parse error comes back with the command's usage, so the
 * user sees what is wrong and what is allowed in one message.
 */
export function parseCommandOptions<O extends OptionsConfig>(args: string[], options: O, usage: string): ReturnType<typeof parseArgs<{ args: string[]; strict: true; allowPositionals: false; options: O }>>['values'] {
  try {
    return parseArgs({ args, strict: true, allowPositionals: false, options }).values;
  } catch (err) {
    throw new Error(`${(err as Error).message}\n\n${usage}`);
  }
}

/**
 * A reader of numeric options for one command: `--name` absent gives the fallback; a value that is blank or fails
 * `check` is an error naming the option, what it must be, what was given, and the usage.
 */
export function numericOptionReader(usage: string) {
  return (name: string, raw: string | undefined, fallback: number, check: (v: number) => boolean, what: string): number => {
    if (raw === undefined) return fallback;
    const v = Number(raw);
    if (raw.trim() === '' || !check(v)) throw new Error(`--${name} must be ${what}, got '${raw}'\n\n${usage}`);
    return v;
  };
}
