// The custom settings page of homebridge-webcam-server in the Homebridge UI, in the browser: tabs
// (the settings form, cameras, users, email), the webcams found on the machine, a preview that
// refreshes about once a second, camera controls, web users and a test email. It talks to
// homebridge-ui/server.js through `homebridge.request` and edits the plugin config through
// `homebridge.getPluginConfig`/`updatePluginConfig` (the user saves it with the form's Save).
/* global homebridge, document, window */
'use strict';

(() => {
  const PLATFORM = 'WebcamServer';
  const PREVIEW_EVERY_MS = 1000;
  const PREVIEW_RETRY_MS = 5000;

  /** The plugin's config block as it is in the form now (null until there is one). */
  let config = null;
  /** The last answer of /status: the config's problems, the id of each camera, the web port. */
  let pluginStatus = null;
  let activeTab = 'settings';

  // ---- small DOM helpers (text only: nothing from the server is parsed as HTML) ----
  const $ = (id) => document.getElementById(id);
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof window.Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function alertBox(kind, message, extra) {
    return el('div', { class: `alert alert-${kind} wcs-alert`, role: kind === 'danger' ? 'alert' : 'status' }, message, extra);
  }
  function show(container, ...nodes) {
    container.replaceChildren(...nodes.filter(Boolean));
  }
  /** The message of a failed `homebridge.request` ({ message, error: { code } }) or of an Error. */
  function messageOf(error) {
    if (error && typeof error.message === 'string') return error.message;
    return String(error);
  }
  function codeOf(error) {
    return (error && error.error && error.error.code) || '';
  }
  const clone = (value) => JSON.parse(JSON.stringify(value));

  // ---- the plugin config ----
  function currentConfig() {
    return config || { platform: PLATFORM };
  }
  function cameras() {
    const list = currentConfig().cameras;
    return Array.isArray(list) ? list : [];
  }
  async function editConfig(change) {
    const next = clone(currentConfig());
    change(next);
    await homebridge.updatePluginConfig([next]);
    config = next;
    configChanged();
    if (form) {
      // The form shows what it was given: draw it again with the new values.
      hideForm();
      showForm();
    }
  }
  function request(path, body) {
    return homebridge.request(path, { config: currentConfig(), ...body });
  }

  // ---- the settings form (drawn by the Homebridge UI below this page, from config.schema.json) ----
  // Made with `homebridge.createForm`; each change is merged into this page's copy of the config
  // (form-merge.js says why), and that copy alone goes to the UI's Save.
  const { layoutKeys, mergeFormModel, normalizeForForm } = window.WebcamFormMerge;
  const isObject = (value) => typeof value === 'object' && value !== null && !Array.isArray(value);
  let form = null;
  let schemaDoc = null;
  /** Paths of the fields the form shows (`cameras[].motion.enabled`, `web.port` …). */
  let owned = new Set();

  /** config.schema.json, as the Homebridge UI hands it out (loaded once). */
  async function loadSchema() {
    if (!schemaDoc) {
      schemaDoc = await homebridge.getPluginConfigSchema();
      owned = layoutKeys(schemaDoc.layout);
    }
    return schemaDoc;
  }

  async function showForm() {
    if (form) return;
    await loadSchema();
    if (activeTab !== 'settings' || form) return;
    const { schema, layout } = schemaDoc;
    // A new setup starts with the schema's name, as the plugin would take it.
    const start = config || { platform: PLATFORM, name: schema.properties.name.default };
    const mine = homebridge.createForm({ schema, layout }, clone(start));
    form = mine;
    mine.onChange(async (model) => {
      if (form !== mine || !isObject(model)) return;
      const next = mergeFormModel(owned, currentConfig(), model, schemaDoc.schema);
      config = next;
      await homebridge.updatePluginConfig([next]);
      configChanged();
    });
  }
  function hideForm() {
    if (!form) return;
    const mine = form;
    form = null;
    mine.end();
  }

  // ---- tabs ----
  function selectTab(name) {
    activeTab = name;
    for (const button of document.querySelectorAll('[data-tab]')) {
      const active = button.dataset.tab === name;
      button.classList.toggle('active', active);
      button.setAttribute('aria-selected', String(active));
    }
    for (const panel of document.querySelectorAll('[data-panel]')) panel.hidden = panel.dataset.panel !== name;
    if (name === 'settings') showForm();
    else hideForm();
    if (name === 'cameras') {
      scanDevices();
      cameraSelected();
    } else stopPreview();
    if (name === 'users') loadUsers();
    if (name === 'email') summarizeEmail();
  }

  // ---- status: ffmpeg and what the plugin will complain about ----
  let statusTimer;
  function refreshStatus() {
    clearTimeout(statusTimer);
    statusTimer = setTimeout(async () => {
      try {
        const status = await request('/status');
        pluginStatus = status;
        showLiveLink();
        const parts = [];
        if (!status.ffmpeg.ok) parts.push(alertBox('danger', `ffmpeg is missing, so no camera can run: ${status.ffmpeg.message}`));
        if (status.problems.length > 0) {
          parts.push(
            alertBox(
              'warning',
              'The plugin will report these problems with the settings as they are now:',
              el('ul', {}, status.problems.map((problem) => el('li', { text: problem }))),
            ),
          );
        }
        show($('wcs-status'), ...parts);
      } catch (error) {
        show($('wcs-status'), alertBox('danger', messageOf(error)));
      }
    }, 400);
  }

  // ---- webcams on this machine ----
  /** The sizes a webcam offers; a format of any size gets the schema's default size (capped at its largest). */
  function formatOptions(device) {
    const camera = schemaDoc.schema.properties.cameras.items.properties;
    const [defaultWidth, defaultHeight, defaultFps] = [camera.width.default, camera.height.default, camera.fps.default];
    const options = [];
    for (const format of device.formats) {
      const name = format.inputFormat === 'mjpeg' ? 'MJPEG' : format.inputFormat;
      for (const size of format.sizes) {
        const fps = size.fps.length > 0 ? Math.round(size.fps[0]) : defaultFps;
        options.push({ inputFormat: format.inputFormat, width: size.width, height: size.height, fps, label: `${name} ${size.width}×${size.height}${size.fps.length > 0 ? ` · ${fps} fps` : ''}` });
      }
      if (format.range) {
        const { maxWidth, maxHeight } = format.range;
        const width = Math.min(defaultWidth, maxWidth);
        const height = Math.min(defaultHeight, maxHeight);
        options.push({ inputFormat: format.inputFormat, width, height, fps: defaultFps, label: `${name} ${width}×${height} (any size up to ${maxWidth}×${maxHeight})` });
      }
    }
    return options;
  }

  function deviceCard(device) {
    const options = formatOptions(device);
    const formatSelect = el('select', { class: 'form-select form-select-sm', 'aria-label': `Format and size for ${device.path}` }, options.map((o, i) => el('option', { value: i, text: o.label })));
    const target = el(
      'select',
      { class: 'form-select form-select-sm', 'aria-label': 'Use it for' },
      cameras().map((camera, i) => el('option', { value: i, text: `camera "${camera.name || `#${i + 1}`}"` })),
      el('option', { value: 'new', text: 'a new camera' }),
    );
    const source = device.byId || device.path;
    const users = cameras()
      .map((camera, i) => ({ camera, i }))
      .filter(({ camera }) => camera.source === device.path || (device.byId && camera.source === device.byId));
    target.value = users.length > 0 ? String(users[0].i) : 'new';
    const use = el('button', {
      type: 'button',
      class: 'btn btn-sm btn-primary',
      text: 'Use',
      onclick: async () => {
        const choice = options[Number(formatSelect.value)];
        const index = target.value === 'new' ? -1 : Number(target.value);
        const name = index >= 0 ? cameras()[index].name : device.name.replace(/:.*$/, '').trim() || 'Webcam';
        await editConfig((next) => {
          next.cameras = Array.isArray(next.cameras) ? next.cameras : [];
          const camera = index >= 0 ? next.cameras[index] : { name };
          Object.assign(camera, { source }, choice ? { inputFormat: choice.inputFormat, width: choice.width, height: choice.height, fps: choice.fps } : {});
          if (index < 0) next.cameras.push(camera);
        });
        homebridge.toast.success(`"${name}" now reads ${source}. Save the settings to keep it.`, 'Webcam Server');
        scanDevices();
      },
    });
    return el(
      'div',
      { class: 'card wcs-device', 'data-device': device.path },
      el(
        'div',
        { class: 'card-body' },
        el('div', { class: 'wcs-device-name' }, el('strong', { text: device.name }), ' ', el('code', { text: device.path })),
        device.byId ? el('div', { class: 'wcs-muted wcs-small' }, 'Stable name: ', el('code', { text: device.byId })) : null,
        users.length > 0 ? el('div', { class: 'wcs-small', text: `Used by ${users.map(({ camera }) => `"${camera.name}"`).join(', ')}.` }) : null,
        device.problem ? alertBox('warning', device.problem) : null,
        device.formats.length > 0
          ? el('p', { class: 'wcs-small' }, device.formats.map((f) => `${f.inputFormat === 'mjpeg' ? 'MJPEG' : f.inputFormat} (${f.description}): ${f.sizes.length > 0 ? f.sizes.map((s) => `${s.width}×${s.height}`).slice(0, 8).join(', ') + (f.sizes.length > 8 ? ` and ${f.sizes.length - 8} more` : '') : 'any size'}`).join('; '))
          : null,
        device.problem && device.formats.length === 0 ? null : el('div', { class: 'wcs-use' }, options.length > 0 ? formatSelect : null, el('span', { text: 'for' }), target, use),
      ),
    );
  }

  let scanning = false;
  async function scanDevices() {
    if (scanning) return;
    scanning = true;
    const box = $('devices');
    try {
      await loadSchema();
      const scan = await request('/devices');
      if (scan.devices.length === 0) {
        show(
          box,
          alertBox(
            'info',
            scan.hint,
            el('div', { class: 'wcs-buttons' }, el('button', { type: 'button', class: 'btn btn-sm btn-outline-primary', id: 'add-testsrc', text: 'Add a test-pattern camera', onclick: addTestPattern })),
          ),
        );
        box.firstChild.id = 'devices-empty';
      } else {
        show(box, ...scan.devices.map(deviceCard), scan.hint ? alertBox('warning', scan.hint) : null);
      }
    } catch (error) {
      show(box, alertBox('danger', messageOf(error)));
    } finally {
      scanning = false;
    }
  }

  async function addTestPattern() {
    await editConfig((next) => {
      next.cameras = Array.isArray(next.cameras) ? next.cameras : [];
      next.cameras.push({ name: `Test pattern${next.cameras.some((c) => c.name === 'Test pattern') ? ` ${next.cameras.length + 1}` : ''}`, source: 'testsrc', width: 640, height: 360, fps: 15 });
    });
    homebridge.toast.success('A test-pattern camera was added. Save the settings to keep it.', 'Webcam Server');
    fillCameraSelect();
    cameraSelected();
  }

  // ---- camera choice shared by the preview and the controls ----
  function fillCameraSelect() {
    const select = $('camera-select');
    const before = select.value;
    const list = cameras();
    select.replaceChildren(...list.map((camera, i) => el('option', { value: i, text: camera.name || `Camera ${i + 1}` })));
    if (before !== '' && Number(before) < list.length) select.value = before;
    $('camera-empty').hidden = list.length > 0;
    $('camera-pane').hidden = list.length === 0;
  }
  function selectedCamera() {
    const index = Number($('camera-select').value);
    return Number.isInteger(index) ? cameras()[index] : undefined;
  }
  function cameraSelected() {
    if (activeTab !== 'cameras') return;
    pendingKeep = {};
    $('controls-keep').disabled = true;
    startPreview();
    loadControls();
  }

  /**
   * The selected camera's page on the plugin's web server, as this browser reaches this machine:
   * at the id and port the plugin takes from the config (/status says them); undefined when there
   * is none (no web server, a unix socket, a camera the plugin disables).
   */
  function liveUrl() {
    const status = pluginStatus;
    const id = status && status.cameraIds[Number($('camera-select').value)];
    if (!id || !status.web) return undefined;
    const host = window.location.hostname.includes(':') ? `[${window.location.hostname}]` : window.location.hostname;
    return `${status.web.tls ? 'https' : 'http'}://${host}:${status.web.port}/cameras/${encodeURIComponent(id)}/`;
  }

  function showLiveLink() {
    const url = selectedCamera() ? liveUrl() : undefined;
    $('live-link-line').hidden = !url;
    if (url) {
      $('live-link').href = url;
      $('live-link').textContent = url;
    }
  }

  // ---- preview ----
  let previewTimer;
  let previewRun = 0;
  function stopPreview() {
    previewRun++;
    clearTimeout(previewTimer);
  }
  function startPreview() {
    stopPreview();
    const run = previewRun;
    const camera = selectedCamera();
    const image = $('preview');
    const status = $('preview-status');
    showLiveLink();
    if (!camera) {
      image.removeAttribute('src');
      return;
    }
    status.textContent = `Connecting to ${camera.source}…`;
    status.className = 'wcs-muted';
    const tick = async () => {
      if (run !== previewRun) return;
      let wait = PREVIEW_EVERY_MS;
      try {
        const frame = await request('/preview', { camera: selectedCamera(), index: Number($('camera-select').value) });
        if (run !== previewRun) return;
        image.src = `data:image/jpeg;base64,${frame.jpeg}`;
        const origin = frame.from === 'plugin' ? ' (from the running plugin, with its saved settings)' : '';
        status.textContent = `Live preview, updated ${new Date(frame.at).toLocaleTimeString()}${origin}`;
        status.className = 'wcs-muted';
        image.classList.remove('wcs-stale');
      } catch (error) {
        if (run !== previewRun) return;
        status.textContent = messageOf(error);
        status.className = codeOf(error) === 'PREVIEW_BUSY' ? 'wcs-muted' : 'wcs-error';
        image.classList.add('wcs-stale');
        wait = PREVIEW_RETRY_MS;
      }
      if (run === previewRun && !document.hidden) previewTimer = setTimeout(tick, wait);
    };
    tick();
  }
  document.addEventListener('visibilitychange', () => {
    if (activeTab !== 'cameras') return;
    if (document.hidden) stopPreview();
    else startPreview();
  });

  // ---- camera controls ----
  /** Values set on this page since the camera was chosen: what "Keep in the config" writes. */
  let pendingKeep = {};

  function controlValue(control) {
    if (control.type === 'boolean') return control.value === null ? null : control.value !== 0;
    return control.value;
  }

  function controlRow(control, camera) {
    const id = `control-${control.name.replace(/[^A-Za-z0-9]+/g, '-')}`;
    const disabled = control.readOnly;
    const set = async (value) => {
      try {
        const answer = await request('/controls/set', { camera, values: { [control.name]: value } });
        pendingKeep[control.name] = value;
        $('controls-keep').disabled = false;
        renderControls(answer, camera);
      } catch (error) {
        show($('controls-message'), alertBox('danger', messageOf(error)));
      }
    };
    let input;
    let shown = el('output', { class: 'wcs-value', for: id, text: control.value === null ? '?' : String(control.value) });
    if (control.type === 'boolean') {
      input = el('input', { type: 'checkbox', class: 'form-check-input', id, checked: control.value ? true : undefined, disabled, onchange: (e) => set(e.target.checked) });
      shown = null;
    } else if (control.type === 'menu') {
      input = el(
        'select',
        { class: 'form-select form-select-sm', id, disabled, onchange: (e) => set(Number(e.target.value)) },
        (control.choices || []).map((choice) => el('option', { value: choice.value, text: choice.label, selected: choice.value === control.value ? true : undefined })),
      );
      shown = null;
    } else {
      input = el('input', {
        type: 'range',
        class: 'form-range',
        id,
        min: control.min,
        max: control.max,
        step: control.step,
        value: control.value === null ? control.default : control.value,
        disabled,
        oninput: (e) => {
          if (shown) shown.textContent = e.target.value;
        },
        onchange: (e) => set(Number(e.target.value)),
      });
    }
    const defaultValue = control.type === 'boolean' ? control.default !== 0 : control.default;
    return el(
      'div',
      { class: `wcs-control${control.inactive ? ' wcs-inactive' : ''}`, 'data-control': control.name },
      el('label', { for: id, text: control.label, title: control.name }),
      input,
      shown,
      el('button', {
        type: 'button',
        class: 'btn btn-sm btn-outline-secondary wcs-default',
        text: 'Default',
        title: `Back to the default (${control.type === 'boolean' ? (defaultValue ? 'on' : 'off') : control.default})`,
        disabled: disabled || controlValue(control) === defaultValue ? true : undefined,
        onclick: () => set(defaultValue),
      }),
      control.inactive ? el('small', { class: 'wcs-muted', text: 'ignored now (automatic mode)' }) : null,
    );
  }

  function renderControls(answer, camera) {
    show($('controls-message'), answer.controls.length === 0 ? alertBox('info', `${answer.device} has no controls to tune.`) : null);
    show($('controls-list'), ...answer.controls.map((control) => controlRow(control, camera)));
  }

  async function loadControls() {
    const camera = selectedCamera();
    if (!camera) return;
    show($('controls-message'), el('p', { class: 'wcs-muted', text: 'Reading the camera controls…' }));
    show($('controls-list'));
    try {
      renderControls(await request('/controls/list', { camera }), camera);
    } catch (error) {
      const code = codeOf(error);
      const kind = code === 'CONTROLS_NOT_CONFIGURED' ? 'info' : 'warning';
      show($('controls-message'), alertBox(kind, messageOf(error)));
      $('controls-message').firstChild.dataset.code = code;
    }
  }

  async function keepControls() {
    const index = Number($('camera-select').value);
    const values = pendingKeep;
    if (!cameras()[index] || Object.keys(values).length === 0) return;
    await editConfig((next) => {
      const camera = next.cameras[index];
      camera.controls = { ...(camera.controls || {}), ...values };
    });
    pendingKeep = {};
    $('controls-keep').disabled = true;
    homebridge.toast.success(`Kept ${Object.keys(values).join(', ')} in the settings. Save them to apply at every start.`, 'Webcam Server');
  }

  // ---- users ----
  async function loadUsers(answer) {
    const message = $('users-message');
    try {
      const list = answer || (await request('/users/list'));
      $('users-file').textContent = list.file;
      const notes = [];
      if (!list.writable) notes.push(alertBox('danger', list.notWritable));
      if (list.problems.length > 0) {
        notes.push(alertBox('warning', 'Some lines of the users file cannot be read; nothing is changed until they are fixed:', el('ul', {}, list.problems.map((p) => el('li', { text: p })))));
      }
      if (list.users.length === 0) notes.push(alertBox('info', 'No users yet: until you add one, the live page refuses everyone.'));
      if (!answer || notes.length > 0) show(message, ...notes);
      $('user-add-submit').disabled = !list.writable;
      show($('users-list'), ...list.users.map((name) => userRow(name, list.writable)));
    } catch (error) {
      show(message, alertBox('danger', messageOf(error)));
    }
  }

  async function userAction(path, body, done) {
    const message = $('users-message');
    try {
      const list = await request(path, body);
      loadUsers(list);
      show(message, alertBox('success', done));
      homebridge.toast.success(done, 'Webcam Server');
      return true;
    } catch (error) {
      show(message, alertBox('danger', messageOf(error)));
      return false;
    }
  }

  function userRow(name, writable) {
    const actions = el('td', { class: 'wcs-actions' });
    const row = el('tr', { 'data-user': name }, el('td', { text: name }), actions);
    const normal = () =>
      show(
        actions,
        el('button', { type: 'button', class: 'btn btn-sm btn-outline-primary', text: 'Change password', disabled: !writable || undefined, onclick: changing }),
        el('button', { type: 'button', class: 'btn btn-sm btn-outline-danger', text: 'Delete', disabled: !writable || undefined, onclick: deleting }),
      );
    const changing = () => {
      const input = el('input', { type: 'password', class: 'form-control form-control-sm', placeholder: `New password for ${name}`, 'aria-label': `New password for ${name}`, autocomplete: 'new-password' });
      show(
        actions,
        input,
        el('button', {
          type: 'button',
          class: 'btn btn-sm btn-primary',
          text: 'Save password',
          onclick: () => userAction('/users/password', { name, password: input.value }, `The password of "${name}" was changed.`),
        }),
        el('button', { type: 'button', class: 'btn btn-sm btn-link', text: 'Cancel', onclick: normal }),
      );
      input.focus();
    };
    const deleting = () =>
      show(
        actions,
        el('span', { text: `Delete "${name}"?` }),
        el('button', { type: 'button', class: 'btn btn-sm btn-danger', text: 'Yes, delete', onclick: () => userAction('/users/delete', { name }, `"${name}" was deleted.`) }),
        el('button', { type: 'button', class: 'btn btn-sm btn-link', text: 'Cancel', onclick: normal }),
      );
    normal();
    return row;
  }

  async function addUser(event) {
    event.preventDefault();
    const name = $('user-add-name');
    const password = $('user-add-password');
    if (await userAction('/users/add', { name: name.value, password: password.value }, `"${name.value.trim()}" was added.`)) {
      name.value = '';
      password.value = '';
    }
  }

  // ---- email ----
  function summarizeEmail() {
    const alerts = currentConfig().alerts || {};
    const ses = alerts.ses || {};
    const smtp = alerts.smtp || {};
    const list = (to) => (Array.isArray(to) ? to.join(', ') : to || '(no recipient yet)');
    let text;
    if (ses.region || ses.from) text = `Alerts go through AWS SES (${ses.region || 'no region yet'}) from ${ses.from || '(no sender yet)'} to ${list(ses.to)}.`;
    else if (smtp.host) text = `Alerts go through the SMTP server ${smtp.host}${smtp.port ? `:${smtp.port}` : ''} from ${smtp.from || '(no sender yet)'} to ${list(smtp.to)}.`;
    else text = 'Email alerts are not set up: fill in AWS SES or SMTP in the Settings tab, under Email alerts.';
    $('email-summary').textContent = text;
  }

  async function sendTestEmail() {
    const button = $('email-test');
    const result = $('email-result');
    button.disabled = true;
    show(result, el('p', { class: 'wcs-muted', text: 'Sending…' }));
    try {
      const sent = await request('/alerts/test');
      show(
        result,
        alertBox('success', `Sent through ${sent.via} to ${sent.to.join(', ')}. Message id: ${sent.messageId}. Check the inbox (and the spam folder).`),
        sent.problems && sent.problems.length > 0 ? alertBox('warning', sent.problems.join(' ')) : null,
      );
    } catch (error) {
      show(result, alertBox('danger', messageOf(error)));
    } finally {
      button.disabled = false;
    }
  }

  // ---- wiring ----
  function configChanged() {
    refreshStatus();
    fillCameraSelect();
    if (activeTab === 'email') summarizeEmail();
  }

  homebridge.addEventListener('ready', async () => {
    try {
      const blocks = await homebridge.getPluginConfig();
      config = blocks[0] ? normalizeForForm(blocks[0]) : null;
    } catch (error) {
      show($('wcs-status'), alertBox('danger', messageOf(error)));
    }
    for (const button of document.querySelectorAll('[data-tab]')) button.addEventListener('click', () => selectTab(button.dataset.tab));
    $('devices-scan').addEventListener('click', scanDevices);
    $('camera-select').addEventListener('change', cameraSelected);
    $('controls-reload').addEventListener('click', loadControls);
    $('controls-keep').addEventListener('click', keepControls);
    $('user-add').addEventListener('submit', addUser);
    $('email-test').addEventListener('click', sendTestEmail);
    configChanged();
    selectTab('settings');
  });
})();
