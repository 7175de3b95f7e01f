// HTTP calls of the dashboard: the bearer token, JSON bodies, error bodies.
//
// The token lives in sessionStorage under TOKEN_KEY. A 401 asks the user for
// a token (one prompt shared by every request waiting on it) and repeats the
// request with it. Every other answer is handed back as a Reply; `json()`
// turns an error answer into an ApiError carrying the body's own message.

const TOKEN_KEY = "batchyard.token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function tokenOf() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function errorMessage(reply) {
  const error = reply.body && reply.body.error;
  if (error && typeof error.message === "string") return error.message;
  return `the server answered ${reply.status}`;
}

export class Api {
  // askToken(reason) resolves with the token the user typed.
  constructor(askToken) {
    this.askToken = askToken;
    this.asking = null;
    this.paths = null;
  }

  async newToken(reason) {
    if (!this.asking) {
      this.asking = this.askToken(reason).then((token) => {
        sessionStorage.setItem(TOKEN_KEY, token);
        this.asking = null;
      });
    }
    await this.asking;
  }

  // One request; resolves with {status, body, headers}. Rejects only when
  // the server cannot be reached.
  async call(method, path, body) {
    for (;;) {
      const headers = { Accept: "application/json" };
      if (body !== undefined) headers["Content-Type"] = "application/json";
      const token = tokenOf();
      if (token) headers.Authorization = `Bearer ${token}`;
      let response;
      try {
        response = await fetch(path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      } catch (error) {
        throw new ApiError(0, "unreachable", `the server did not answer: ${error.message}`);
      }
      if (response.status === 401) {
        await this.newToken(token ? "The token was refused." : "");
        continue;
      }
      const text = await response.text();
      let parsed = null;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        parsed = null;
      }
      return { status: response.status, body: parsed, headers: response.headers };
    }
  }

  // The body of a 2xx answer; any other answer rejects with its message.
  async json(method, path, body) {
    const reply = await this.call(method, path, body);
    if (reply.status >= 200 && reply.status < 300) return reply.body;
    const code = reply.body && reply.body.error ? reply.body.error.code : "http";
    throw new ApiError(reply.status, code, errorMessage(reply));
  }

  // Whether the server has a route, from its OpenAPI document (so a page
  // never calls a route an older server lacks).
  async has(path, method) {
    if (!this.paths) {
      this.paths = this.call("GET", "/openapi.json").then((reply) =>
        reply.status === 200 && reply.body ? reply.body.paths || {} : {},
      );
    }
    const paths = await this.paths;
    return Boolean(paths[path] && paths[path][method]);
  }
}
