// The live page's controls panel: one row per control the webcam reported (a slider, a switch or
// a list), the value set beside the camera's current one, refreshed every 10 s (the stream rate
// cap is live.js's). Built with DOM calls only, no markup strings, so nothing a device reports can
// become HTML.
'use strict';

(function () {
  const cameraId = document.body.dataset.camera;
  if (!cameraId) return;

  // --- controls ----------------------------------------------------------------------------
  const panel = document.getElementById('controls');
  if (!panel) return;
  const api = '/api/cameras/' + encodeURIComponent(cameraId) + '/controls';
  const status = document.getElementById('controls-state');
  const table = document.getElementById('controls-table');
  const tbody = table.querySelector('tbody');
  const rows = new Map();
  let shownNames = '';
  // The last load failed (no tool, no device ...) or none ended yet: its message stays until a load succeeds.
  let loadFailed = true;

  const describe = function (control, value) {
    if (value === null || value === undefined) return 'unknown';
    if (control.type === 'boolean') return value ? 'on' : 'off';
    const choice = (control.choices || []).find(function (c) { return c.value === value; });
    return choice ? choice.label : String(value);
  };

  const showProblem = function (message) {
    status.textContent = message;
    status.className = 'controls-state problem';
    status.hidden = false;
  };

  const showStatus = function (message) {
    status.textContent = message;
    status.className = 'controls-state';
    status.hidden = !message;
  };

  const send = function (row, value) {
    const body = {};
    body[row.control.name] = value;
    row.pending = true;
    row.tr.classList.remove('failed');
    return fetch(api, {
      method: 'PUT',
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    })
      .then(function (response) {
        return response.json().then(function (data) { return { ok: response.ok, data: data }; });
      })
      .then(function (result) {
        row.pending = false;
        if (!result.ok) {
          row.tr.classList.add('failed');
          showProblem(result.data.message || 'The camera did not take that value.');
          return;
        }
        showStatus('');
        update(result.data, true);
      })
      .catch(function () {
        row.pending = false;
        row.tr.classList.add('failed');
        showProblem('The server could not be reached; the value may not be set.');
      });
  };

  const inputFor = function (control, id, row) {
    let input;
    if (control.type === 'boolean') {
      input = document.createElement('input');
      input.type = 'checkbox';
      input.addEventListener('change', function () { send(row, input.checked); });
    } else if (control.type === 'menu') {
      input = document.createElement('select');
      (control.choices || []).forEach(function (choice) {
        const option = document.createElement('option');
        option.value = String(choice.value);
        option.textContent = choice.label;
        input.appendChild(option);
      });
      input.addEventListener('change', function () { send(row, Number(input.value)); });
    } else {
      input = document.createElement('input');
      input.type = 'range';
      input.min = String(control.min);
      input.max = String(control.max);
      input.step = String(control.step);
      row.output = document.createElement('output');
      row.output.htmlFor = id;
      input.addEventListener('input', function () { row.output.textContent = input.value; });
      input.addEventListener('change', function () { send(row, Number(input.value)); });
    }
    input.id = id;
    input.disabled = control.readOnly;
    return input;
  };

  const build = function (controls) {
    tbody.textContent = '';
    rows.clear();
    controls.forEach(function (control, index) {
      const row = { control: control, pending: false };
      const id = 'control-' + index;
      const tr = document.createElement('tr');
      tr.dataset.control = control.name;
      const name = document.createElement('td');
      const label = document.createElement('label');
      label.htmlFor = id;
      label.textContent = control.label;
      name.appendChild(label);
      const set = document.createElement('td');
      row.input = inputFor(control, id, row);
      set.appendChild(row.input);
      if (row.output) set.appendChild(row.output);
      row.current = document.createElement('td');
      row.current.className = 'current';
      const reset = document.createElement('td');
      if (!control.readOnly) {
        const button = document.createElement('button');
        button.type = 'button';
        button.textContent = 'Default';
        button.title = 'Set to the default, ' + describe(control, control.default);
        button.addEventListener('click', function () { send(row, control.default); });
        reset.appendChild(button);
      }
      tr.append(name, set, row.current, reset);
      row.tr = tr;
      tbody.appendChild(tr);
      rows.set(control.name, row);
    });
  };

  // `force`: the answer to our own change, so inputs follow what the camera actually took.
  const update = function (controls, force) {
    const names = controls.map(function (c) { return c.name; }).join('\n');
    if (names !== shownNames) {
      build(controls);
      shownNames = names;
      force = true;
    }
    controls.forEach(function (control) {
      const row = rows.get(control.name);
      row.control = control;
      row.current.textContent = describe(control, control.value);
      row.current.title = 'Default: ' + describe(control, control.default);
      row.tr.classList.toggle('inactive', control.inactive);
      row.tr.title = control.inactive ? 'The camera ignores this while its automatic mode is on.' : '';
      const editing = document.activeElement === row.input && !force;
      if (control.value === null || row.pending || editing) return;
      if (control.type === 'boolean') row.input.checked = control.value === 1;
      else row.input.value = String(control.value);
      if (row.output) row.output.textContent = String(control.value);
    });
    table.hidden = controls.length === 0;
    if (controls.length === 0) showStatus('This camera reports no adjustable controls.');
  };

  const load = function () {
    fetch(api, { credentials: 'same-origin', cache: 'no-store' })
      .then(function (response) {
        return response.json().then(function (data) { return { ok: response.ok, data: data }; });
      })
      .then(function (result) {
        if (result.ok) {
          if (loadFailed) showStatus('');
          loadFailed = false;
          update(result.data, false);
        } else {
          loadFailed = true;
          table.hidden = true;
          shownNames = '';
          showProblem(result.data.message || 'Camera controls are not available.');
        }
      })
      .catch(function () {
        loadFailed = true;
        showProblem('The server could not be reached.');
      });
  };

  // Every 10 s: with uvcdynctrl each read is one short process per control.
  load();
  setInterval(load, 10000);
})();
