import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };
export type LogFormat = 'json' | 'pretty';

export interface LoggerOptions {
  level?: string;
  format?: LogFormat;
  /** Destination file descriptor or path; logs never go to stdout by default (stdout is the CLI's). */
  destination?: number | string;
  name?: string;
}

/** pino logger factory. Default destination is stderr so `--json` output on stdout stays clean. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? process.env.PILOT_LOG_LEVEL ?? 'info';
  const dest = opts.destination ?? 2;
  if (opts.format === 'pretty') {
    const transport = pino.transport({
      target: 'pino-pretty',
      options: { destination: dest, colorize: false, translateTime: 'SYS:HH:MM:ss.l' },
    }) as DestinationStream;
    return pino({ level, name: opts.name }, transport);
  }
  return pino({ level, name: opts.name }, pino.destination({ dest, sync: false }));
}

/** A logger that drops everything, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
