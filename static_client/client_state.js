// What the citizen page knows and keeps: the tokens and ids in this tab's sessionStorage (so
// only this tab can resume the intake or the chat), the page's address parameters, the current
// conversation and intake (`state`), and the one connection to /ws/client with its outbox.
//
// The page's other modules import this one, and it imports none of them: the connection's
// messages and status go to the handlers that client.js gives to `listen`.

import { Connection, Outbox, tabStorage } from "/static/kanava.js";

export const KEY = {
  token: "kanava.client.token",
  conversation: "kanava.client.conversation",
  outbox: "kanava.client.outbox",
  ui: "kanava.client.ui",
  intake: "kanava.client.intake", // the intake's token, for intake.resume
  topic: "kanava.client.topic",
  openId: "kanava.client.open_id", // a retried intake.start returns the chat it queued
  botToken: "kanava.client.bot_token", // the bot chat an intake hands over to a nurse
  feedback: "kanava.client.feedback", // the conversation whose feedback was given
};

// sessionStorage, or memory where a framed page may not store anything.
export const store = tabStorage();

// ?team=, ?topic=, ?lang= and ?embed=1 (the widget's frame).
export const params = new URLSearchParams(location.search);

export const state = {
  token: store.getItem(KEY.token),
  conversationId: store.getItem(KEY.conversation),
  view: null, // the latest ConversationView
  openRequest: null, // conversation.open or bot.start waiting to be sent (no intake)
  list: null, // the chat's MessageList, once the chat shows
  closeWanted: null, // the conversation the client ended while the connection was down

  // The intake.
  service: null, // the latest /api/service answer
  intakeToken: store.getItem(KEY.intake),
  intakeStart: null, // intake.start waiting for its first step
  step: null, // the latest intake.step
  restarted: false, // a lost intake was started again: say so once
};

const handlers = { onMessage: () => {}, onStatus: () => {} };

/** Where the connection's messages and its status go (client.js wires them). */
export function listen({ onMessage, onStatus }) {
  handlers.onMessage = onMessage;
  handlers.onStatus = onStatus;
}

export const connection = new Connection({
  path: "/ws/client",
  hello() {
    if (state.token) {
      return { type: "conversation.resume", token: state.token, last_seq: state.list ? state.list.lastSeq : 0 };
    }
    if (state.intakeToken) return { type: "intake.resume", token: state.intakeToken };
    return state.intakeStart || state.openRequest;
  },
  onMessage: (msg) => handlers.onMessage(msg),
  onStatus: (...status) => handlers.onStatus(...status),
  onReady() {
    outbox.flush();
    if (state.closeWanted && state.closeWanted === state.conversationId) {
      connection.send({ type: "conversation.close", conversation_id: state.closeWanted });
    }
    state.closeWanted = null;
  },
});

export const outbox = new Outbox(connection, KEY.outbox, store);

/** The intake is over or abandoned: its token and its start are forgotten. */
export function forgetIntake() {
  state.intakeToken = null;
  state.intakeStart = null;
  store.removeItem(KEY.intake);
  store.removeItem(KEY.topic);
  store.removeItem(KEY.openId);
}
