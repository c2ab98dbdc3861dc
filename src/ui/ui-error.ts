// An error the Homebridge UI shows to the user as it is: a code the page can react to and a
// message that says what happened and what to do about it.
export class UiError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'UiError';
  }
}
