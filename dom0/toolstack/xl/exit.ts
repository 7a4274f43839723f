// How an xl command ends other than by returning its status: XlExit carries the exit code, the
// text for stderr and, for help, the text for stdout. bin/xl.ts prints them; nothing below
// prints a stack trace.

export class XlExit extends Error {
  constructor(
    readonly code: number,
    message: string,
    /** Printed on stdout after the message (xl prints a command's help there). */
    readonly stdout = '',
  ) {
    super(message);
  }
}
