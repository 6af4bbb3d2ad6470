/** The console's URL of a stream, with an event selected: what copy-link copies and every causation link opens. */
export function eventHref(path: string, offset?: number): string {
  return `/streams${path}${offset === undefined ? "" : `?offset=${offset}`}`;
}

export function absoluteEventUrl(path: string, offset: number): string {
  return `${location.origin}/console${eventHref(path, offset)}`;
}
