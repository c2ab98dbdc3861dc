// How the custom settings page (app.js) turns the settings form's changes into the plugin config.
// The Homebridge UI's form keeps only the values of the fields it shows: a key it has no field for
// (a camera's `controls`, `web.trustProxy`, anything the schema does not know) would be dropped
// the moment the form changes anything. So every change of the form is merged into the page's own
// copy of the config: the form decides the keys it shows, every other key is kept as it was.
// Loaded by index.html before app.js (as `WebcamFormMerge`); the plugin (src/config-validate.ts) and the
// tests load it through require().
'use strict';

(function (root) {
  const isObject = (value) => typeof value === 'object' && value !== null && !Array.isArray(value);
  const clone = (value) => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));

  /** The paths of the fields a layout shows (`cameras[].motion.enabled`, `web.port` …). */
  function layoutKeys(items, into = new Set()) {
    for (const item of items || []) {
      if (typeof item === 'string') into.add(item.replace(/\[\]$/, ''));
      else if (isObject(item)) {
        if (typeof item.key === 'string') into.add(item.key.replace(/\[\]$/, ''));
        layoutKeys(item.items, into);
      }
    }
    return into;
  }

  /** True when the form shows `path` or something inside it. */
  function formShows(owned, path) {
    if (owned.has(path)) return true;
    for (const key of owned) if (key.startsWith(`${path}.`) || key.startsWith(`${path}[]`)) return true;
    return false;
  }

  /** An object with at least one value that is neither empty nor the default the form fills in (`node`: its schema). */
  function hasValues(value, node) {
    const defaults = (node && node.properties) || {};
    return (
      isObject(value) &&
      Object.entries(value).some(([key, v]) => v !== undefined && v !== '' && !(Array.isArray(v) && v.length === 0) && !(defaults[key] && defaults[key].default === v))
    );
  }

  function mergeObject(owned, old, model, path) {
    const out = { ...model };
    for (const [key, value] of Object.entries(old || {})) {
      const at = path ? `${path}.${key}` : key;
      if (key in out) {
        if (isObject(value) && isObject(out[key])) out[key] = mergeObject(owned, value, out[key], at);
        else if (Array.isArray(value) && Array.isArray(out[key]) && out[key].some(isObject)) out[key] = mergeList(owned, value, out[key], `${at}[]`);
      } else if (!formShows(owned, at)) {
        out[key] = clone(value);
      }
    }
    return out;
  }

  /** Items of a list (cameras) by position while the count is unchanged (a rename), else by name. */
  function mergeList(owned, old, model, path) {
    return model.map((item, i) => {
      const match = old.length === model.length ? old[i] : old.find((o) => isObject(o) && isObject(item) && o.name === item.name);
      return isObject(item) && isObject(match) ? mergeObject(owned, match, item, path) : item;
    });
  }

  /**
   * The config after a change of the form: `model` (what the form holds) with every key of `old`
   * that the form has no field for. Without SES or SMTP, the alert switches the form fills in with
   * their defaults mean nothing (and the plugin would warn about them at every start): dropped.
   * `schema` (config.schema.json's) tells the defaults the form fills in from the user's values.
   */
  function mergeFormModel(owned, old, model, schema) {
    const next = mergeObject(owned, old, model, '');
    const ways = (schema && schema.properties && schema.properties.alerts && schema.properties.alerts.properties) || {};
    if (isObject(next.alerts) && !hasValues(next.alerts.ses, ways.ses) && !hasValues(next.alerts.smtp, ways.smtp)) delete next.alerts;
    return next;
  }

  /**
   * Turns the other spellings the plugin accepts into the ones the form has fields for. The plugin
   * reads every config through this same function (src/config-validate.ts), so what it accepts and
   * what the form shows cannot drift apart.
   */
  function normalizeForForm(block) {
    const next = clone(block);
    const list = (value) => (typeof value === 'string' ? value.split(/[,;]/).map((s) => s.trim()).filter(Boolean) : value);
    const alerts = isObject(next.alerts) ? next.alerts : undefined;
    if (alerts && isObject(alerts.ses) && alerts.ses.to !== undefined) alerts.ses.to = list(alerts.ses.to);
    if (alerts && isObject(alerts.smtp)) {
      const smtp = alerts.smtp;
      // flask-cam's `secrets` names
      for (const [alias, name] of [['sender', 'from'], ['sender_name', 'fromName'], ['recipient', 'to'], ['smtp_username', 'username'], ['smtp_password', 'password']]) {
        if (smtp[alias] !== undefined) {
          if (smtp[name] === undefined || smtp[name] === '') smtp[name] = smtp[alias];
          Reflect.deleteProperty(smtp, alias);
        }
      }
      if (smtp.to !== undefined) smtp.to = list(smtp.to);
      if (typeof smtp.port === 'string' && /^\s*\d+\s*$/.test(smtp.port)) smtp.port = Number(smtp.port);
    }
    // `failedLogins: false` is off (0); `true` is the default count.
    if (alerts && isObject(alerts.on) && typeof alerts.on.failedLogins === 'boolean') {
      if (alerts.on.failedLogins) delete alerts.on.failedLogins;
      else alerts.on.failedLogins = 0;
    }
    if (isObject(next.web) && typeof next.web.kioskFrameAncestors === 'string') next.web.kioskFrameAncestors = [next.web.kioskFrameAncestors];
    for (const camera of Array.isArray(next.cameras) ? next.cameras : []) {
      for (const key of ['width', 'height', 'fps', 'quality']) {
        if (isObject(camera) && typeof camera[key] === 'string' && /^\s*\d+\s*$/.test(camera[key])) camera[key] = Number(camera[key]);
      }
    }
    return next;
  }

  const api = { layoutKeys, mergeFormModel, normalizeForForm };
  if (typeof module === 'object' && module.exports) module.exports = api;
  else root.WebcamFormMerge = api;
})(globalThis);
