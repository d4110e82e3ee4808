// The sandbox page: renders the snapshots pushed on /ws and sends the visitor's actions
// to POST /api/act. No framework, no build step; untrusted text only becomes text nodes.
"use strict";
(function () {
  const { el } = window.Md;
  const $ = (id) => document.getElementById(id);
  const COMPONENTS_V2 = 1 << 15;
  const OPTION = { SUB: 1, GROUP: 2, STRING: 3, INTEGER: 4, BOOLEAN: 5, USER: 6, CHANNEL: 7,
    ROLE: 8, MENTIONABLE: 9, NUMBER: 10, ATTACHMENT: 11 };
  const COLORS = ["#5865f2", "#3ba55c", "#faa61a", "#ed4245", "#eb459e", "#00a8fc"];

  let snap = null;
  let viewer = localStorage.getItem("reelbot-sandbox-user") || "";
  let channelId = "";
  let generation = 0;
  const cache = new Map(); // message id -> {key, node}
  let shownModal = "";

  // -- talking to the sandbox --------------------------------------------------------------
  async function act(body) {
    const response = await fetch("/api/act", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user_id: viewer, channel_id: channelId, ...body }),
    });
    const result = await response.json().catch(() => ({ error: response.statusText }));
    if (!response.ok) throw new Error(result.error || response.statusText);
    return result;
  }

  function showError(err) { $("error").textContent = err ? String(err.message || err) : ""; }

  function connect(delay) {
    const ws = new WebSocket(`ws://${location.host}/ws`);
    ws.onopen = () => { $("conn").textContent = "● live"; delay = 250; };
    ws.onmessage = (event) => render(JSON.parse(event.data));
    ws.onclose = () => {
      $("conn").textContent = "disconnected — reconnecting…";
      setTimeout(() => connect(Math.min(delay * 2, 5000)), delay);
    };
  }

  function readFile(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve({ name: file.name, type: file.type,
        data: String(reader.result).split(",", 2)[1] || "" });
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(file);
    });
  }

  // -- context for markdown -------------------------------------------------------------------
  function ctx() {
    return {
      users: snap.users, roles: snap.roles, openChannel,
      channelName: (id) => {
        for (const c of snap.channels) {
          if (c.id === id) return c.name;
          for (const t of c.threads) if (t.id === id) return t.name;
        }
        return null;
      },
    };
  }

  // -- whole page --------------------------------------------------------------------------------
  function render(next) {
    const firstOfWorld = !snap || next.generation !== generation;
    snap = next;
    generation = next.generation;
    if (firstOfWorld) {
      cache.clear();
      if (!snap.members.some((m) => m.id === viewer)) viewer = snap.members[0].id;
      channelId = snap.channels[0] ? snap.channels[0].id : "";
      renderMembers();
    }
    if (!findChannel(channelId)) channelId = snap.channels[0].id;
    $("guild-name").textContent = snap.guild.name;
    renderChannels();
    renderMessages();
    renderCommands(firstOfWorld);
    renderProviders();
    renderModal();
  }

  function findChannel(id) {
    for (const c of snap.channels) {
      if (c.id === id) return { channel: c, thread: false };
      for (const t of c.threads) if (t.id === id) return { channel: t, thread: true, parent: c };
    }
    return null;
  }

  function openChannel(id) {
    channelId = id;
    renderChannels();
    renderMessages(true);
  }

  function renderMembers() {
    const select = $("as-user");
    select.replaceChildren();
    for (const m of snap.members) {
      const opt = el("option", null, m.role === "member" ? m.name : `${m.name} (${m.role})`);
      opt.value = m.id;
      select.appendChild(opt);
    }
    select.value = viewer;
  }

  function renderChannels() {
    const list = $("channels");
    list.replaceChildren();
    for (const c of snap.channels) {
      const b = el("button", "channel" + (c.id === channelId ? " active" : ""), "# " + c.name);
      b.type = "button";
      b.dataset.channel = c.id;
      b.onclick = () => openChannel(c.id);
      list.appendChild(b);
      for (const t of c.threads) {
        const tb = el("button", "thread" + (t.id === channelId ? " active" : ""), "↳ " + t.name);
        tb.type = "button";
        tb.dataset.channel = t.id;
        tb.title = t.name;
        tb.onclick = () => openChannel(t.id);
        list.appendChild(tb);
      }
    }
    const found = findChannel(channelId);
    $("chat-title").textContent = found ? found.channel.name : "";
    $("chat-topic").textContent = found && found.thread ? "thread in #" + found.parent.name : (found && found.channel.topic) || "";
  }

  // -- messages ----------------------------------------------------------------------------------
  function renderMessages(jump) {
    const box = $("messages");
    const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    const all = (snap.messages[channelId] || []).filter((m) => !m.visible_to || m.visible_to === viewer);
    const nodes = all.map((m) => {
      const key = JSON.stringify([m, viewer]);
      const hit = cache.get(m.id);
      if (hit && hit.key === key) return hit.node;
      const node = messageNode(m);
      cache.set(m.id, { key, node });
      return node;
    });
    if (!nodes.length) {
      box.replaceChildren(el("div", "empty", "No messages yet. Type a command below."));
    } else {
      // Touch only what changed: a video that is playing keeps playing when others arrive.
      const keep = new Set(nodes);
      for (const child of Array.from(box.children)) if (!keep.has(child)) child.remove();
      nodes.forEach((n, i) => { if (box.children[i] !== n) box.insertBefore(n, box.children[i] || null); });
    }
    if (jump || nearBottom) box.scrollTop = box.scrollHeight;
  }

  function avatar(userId, name) {
    const a = el("div", "avatar", (name || "?").slice(0, 1).toUpperCase());
    a.style.background = COLORS[Number(BigInt(userId) % 6n)];
    return a;
  }

  function messageNode(m) {
    if (m.type === 18) { // THREAD_CREATED notice
      const n = el("div", "system", `${m.author.username} started a thread: `);
      n.appendChild(el("b", null, m.content));
      n.dataset.messageId = m.id;
      return n;
    }
    const user = snap.users[m.author.id] || { name: m.author.username };
    const node = el("div", "msg" + (m.visible_to ? " ephemeral" : ""));
    node.dataset.messageId = m.id;
    node.appendChild(avatar(m.author.id, user.name));
    const body = el("div", "body");
    const head = el("div", "head");
    head.appendChild(el("span", "author", user.name));
    if (m.author.bot) head.appendChild(el("span", "tag", "APP"));
    head.appendChild(el("span", "time", new Date(m.timestamp).toLocaleTimeString()));
    if (m.edited_timestamp) head.appendChild(el("span", "edited", "(edited)"));
    body.appendChild(head);
    if (m.flags & 128) body.appendChild(el("div", "note", `${user.name} is thinking…`));
    if (m.content) {
      const content = el("div", "content");
      content.appendChild(window.Md.render(m.content, ctx()));
      body.appendChild(content);
    }
    const used = new Set();
    if (m.flags & COMPONENTS_V2) {
      for (const c of m.components || []) body.appendChild(component(c, m, used));
    }
    for (const e of m.embeds || []) body.appendChild(embed(e, m, used));
    const files = (m.attachments || []).filter((a) => !used.has(a.filename));
    if (files.length) {
      const box = el("div", "attachments");
      for (const a of files) box.appendChild(media(a.url, a.filename, a.content_type, a.size));
      body.appendChild(box);
    }
    if (!(m.flags & COMPONENTS_V2)) {
      for (const c of m.components || []) body.appendChild(component(c, m, used));
    }
    if (m.thread) {
      const card = el("button", "thread-card");
      card.type = "button";
      card.dataset.thread = m.thread.id;
      card.appendChild(el("b", null, m.thread.name));
      card.appendChild(el("div", "note", `${m.thread.message_count || 0} message${m.thread.message_count === 1 ? "" : "s"} · open thread`));
      card.onclick = () => openChannel(m.thread.id);
      body.appendChild(card);
    }
    body.appendChild(reactions(m));
    if (m.visible_to) body.appendChild(el("div", "note", "Only you can see this"));
    node.appendChild(body);
    return node;
  }

  function isVideo(name, type) { return /^video\//.test(type || "") || /\.(mp4|webm|mov)$/i.test(name || ""); }
  function isImage(name, type) { return /^image\//.test(type || "") || /\.(png|jpe?g|gif|webp)$/i.test(name || ""); }

  function media(url, name, type, size) {
    const href = window.Md.safeUrl(url || "");
    if (href && isVideo(name, type)) {
      const v = el("video");
      v.controls = true;
      v.preload = "metadata";
      v.src = href;
      v.title = name;
      return v;
    }
    if (href && isImage(name, type)) {
      const img = el("img");
      img.src = href;
      img.alt = name || "";
      img.loading = "lazy";
      return img;
    }
    const f = el("div", "file");
    const a = el("a", null, name || "file");
    if (href) a.href = href;
    f.appendChild(a);
    if (size) f.appendChild(el("span", "note", ` ${(size / 1024).toFixed(1)} KB`));
    return f;
  }

  function resolveMedia(url, m, used) {
    if (url && url.startsWith("attachment://")) {
      const name = url.slice("attachment://".length);
      const a = (m.attachments || []).find((x) => x.filename === name);
      used.add(name);
      return a ? { url: a.url, name, type: a.content_type } : { url: "", name, type: "" };
    }
    return { url, name: (url || "").split("?")[0].split("/").pop(), type: "" };
  }

  function color(n) { return n ? "#" + Number(n).toString(16).padStart(6, "0") : null; }

  function embed(e, m, used) {
    const box = el("div", "embed");
    if (e.color) box.style.borderLeftColor = color(e.color);
    const md = (text, cls) => { const d = el("div", cls); d.appendChild(window.Md.render(text, ctx())); return d; };
    if (e.author && e.author.name) box.appendChild(el("div", "embed-author", e.author.name));
    if (e.title) {
      const t = el("div", "embed-title");
      const href = e.url && window.Md.safeUrl(e.url);
      if (href) { const a = el("a", null, e.title); a.href = href; a.rel = "noopener noreferrer"; a.target = "_blank"; t.appendChild(a); }
      else t.appendChild(window.Md.render(e.title, ctx()));
      box.appendChild(t);
    }
    if (e.description) box.appendChild(md(e.description, "content"));
    if (e.fields && e.fields.length) {
      const grid = el("div", "embed-fields");
      for (const f of e.fields) {
        const cell = el("div", "embed-field" + (f.inline ? "" : " wide"));
        cell.appendChild(md(f.name, "embed-field-name"));
        cell.appendChild(md(f.value, "content"));
        grid.appendChild(cell);
      }
      box.appendChild(grid);
    }
    for (const key of ["image", "thumbnail", "video"]) {
      if (e[key] && e[key].url) {
        const r = resolveMedia(e[key].url, m, used);
        box.appendChild(media(r.url, r.name, key === "video" ? "video/mp4" : "image/png"));
      }
    }
    const foot = [e.footer && e.footer.text, e.timestamp && new Date(e.timestamp).toLocaleString()].filter(Boolean);
    if (foot.length) box.appendChild(el("div", "embed-footer", foot.join(" • ")));
    return box;
  }

  // Components: action rows, buttons, selects, and Components V2 (sections, text,
  // thumbnails, media galleries, files, separators, containers).
  function component(c, m, used) {
    switch (c.type) {
      case 1: {
        const row = el("div", "row");
        for (const child of c.components || []) row.appendChild(component(child, m, used));
        return row;
      }
      case 2: return button(c, m);
      case 3: case 5: case 6: case 7: case 8: return select(c, m);
      case 9: {
        const s = el("div", "section");
        const texts = el("div");
        for (const child of c.components || []) texts.appendChild(component(child, m, used));
        s.appendChild(texts);
        if (c.accessory) s.appendChild(component(c.accessory, m, used));
        return s;
      }
      case 10: {
        const d = el("div", "content");
        d.appendChild(window.Md.render(c.content, ctx()));
        return d;
      }
      case 11: {
        const r = resolveMedia(c.media && c.media.url, m, used);
        return media(r.url, r.name, r.type || "image/png");
      }
      case 12: {
        const g = el("div", "gallery");
        for (const item of c.items || []) {
          const r = resolveMedia(item.media && item.media.url, m, used);
          g.appendChild(media(r.url, r.name, r.type));
        }
        return g;
      }
      case 13: {
        const r = resolveMedia(c.file && c.file.url, m, used);
        return media(r.url, r.name, "application/octet-stream");
      }
      case 14: return el("hr", "separator" + (c.divider === false ? " space" : ""));
      case 17: {
        const box = el("div", "container");
        if (c.accent_color) box.style.borderLeftColor = color(c.accent_color);
        for (const child of c.components || []) box.appendChild(component(child, m, used));
        return box;
      }
      default: return el("div", "note", `(component type ${c.type})`);
    }
  }

  function button(c, m) {
    const b = el("button", "btn s" + (c.style || 2));
    b.type = "button";
    b.textContent = [c.emoji && c.emoji.name, c.label].filter(Boolean).join(" ");
    b.disabled = !!c.disabled || c.style === 6;
    if (c.style === 5) {
      b.textContent += " ↗";
      const href = window.Md.safeUrl(c.url || "");
      b.onclick = () => { if (href) window.open(href, "_blank", "noopener,noreferrer"); };
      return b;
    }
    b.dataset.customId = c.custom_id || "";
    b.onclick = () => act({ action: "click", message_id: m.id, channel_id: m.channel_id,
      custom_id: c.custom_id }).then(() => showError(null), showError);
    return b;
  }

  function select(c, m) {
    const s = el("select");
    s.disabled = !!c.disabled;
    s.multiple = (c.max_values || 1) > 1;
    const ph = el("option", null, c.placeholder || "Make a selection");
    ph.value = "";
    if (!s.multiple) s.appendChild(ph);
    const options = c.type === 3 ? c.options || [] : snap.members.map((x) => ({ label: x.name, value: x.id }));
    for (const o of options) {
      const opt = el("option", null, [o.emoji && o.emoji.name, o.label].filter(Boolean).join(" "));
      opt.value = o.value;
      opt.selected = !!o.default;
      s.appendChild(opt);
    }
    s.onchange = () => {
      const values = Array.from(s.selectedOptions).map((o) => o.value).filter(Boolean);
      act({ action: "click", message_id: m.id, channel_id: m.channel_id, custom_id: c.custom_id, values })
        .then(() => showError(null), showError);
    };
    const row = el("div", "row");
    row.appendChild(s);
    return row;
  }

  function reactions(m) {
    const box = el("div", "reactions");
    const users = m.reaction_users || {};
    for (const r of m.reactions || []) {
      const emoji = r.emoji.name;
      const mine = (users[emoji] || []).includes(viewer);
      const b = el("button", "reaction" + (mine ? " mine" : ""), `${emoji} ${r.count}`);
      b.type = "button";
      b.dataset.emoji = emoji;
      b.title = (users[emoji] || []).map((u) => (snap.users[u] || { name: u }).name).join(", ");
      b.onclick = () => react(m, emoji, mine);
      box.appendChild(b);
    }
    const add = el("span", "react-add");
    for (const emoji of ["🔁", "❌", "👍"]) {
      const b = el("button", null, "+" + emoji);
      b.type = "button";
      b.dataset.addEmoji = emoji;
      b.title = `React ${emoji} as you`;
      b.onclick = () => react(m, emoji, false);
      add.appendChild(b);
    }
    box.appendChild(add);
    // Message context-menu commands the bot synced (Apps → name on this message).
    for (const cmd of snap.commands || []) {
      if (cmd.type !== 3) continue;
      const b = el("button", "app-command", `Apps ▸ ${cmd.name}`);
      b.type = "button";
      b.dataset.messageCommand = cmd.name;
      b.title = `Use the message command "${cmd.name}" on this message as you`;
      b.onclick = () =>
        act({ action: "message_command", name: cmd.name, channel_id: m.channel_id, message_id: m.id })
          .then(() => showError(null), showError);
      add.appendChild(b);
    }
    return box;
  }

  function react(m, emoji, remove) {
    act({ action: remove ? "unreact" : "react", channel_id: m.channel_id, message_id: m.id, emoji })
      .then(() => showError(null), showError);
  }

  // -- the command form, built from the commands the bot synced -------------------------------
  function leaves() {
    const out = [];
    for (const cmd of snap.commands) {
      if ((cmd.type || 1) !== 1) continue;
      const subs = (cmd.options || []).filter((o) => o.type === OPTION.SUB || o.type === OPTION.GROUP);
      if (!subs.length) { out.push({ path: cmd.name, description: cmd.description, options: cmd.options || [] }); continue; }
      for (const sub of subs) {
        if (sub.type === OPTION.SUB) out.push({ path: `${cmd.name} ${sub.name}`, description: sub.description, options: sub.options || [] });
        else for (const leaf of sub.options || []) out.push({ path: `${cmd.name} ${sub.name} ${leaf.name}`, description: leaf.description, options: leaf.options || [] });
      }
    }
    return out.sort((a, b) => a.path.localeCompare(b.path));
  }

  let commandKey = "";
  function renderCommands(force) {
    const list = leaves();
    const key = JSON.stringify(list);
    if (key === commandKey && !force) return;
    commandKey = key;
    const select = $("command");
    const previous = select.value || "animate";
    select.replaceChildren();
    for (const leaf of list) {
      const opt = el("option", null, leaf.path);
      opt.value = leaf.path;
      opt.title = leaf.description || "";
      select.appendChild(opt);
    }
    if (!list.length) select.appendChild(el("option", null, "(the bot has not synced its commands yet)"));
    select.value = list.some((l) => l.path === previous) ? previous : (list[0] || {}).path || "";
    renderOptions();
  }

  function currentLeaf() { return leaves().find((l) => l.path === $("command").value); }

  function renderOptions() {
    const box = $("options");
    box.replaceChildren();
    const leaf = currentLeaf();
    if (!leaf) return;
    for (const o of leaf.options) box.appendChild(optionField(o));
  }

  function optionField(o) {
    const label = el("label", "opt" + (o.name === "prompt" ? " wide" : ""));
    const title = el("span", null, o.name);
    if (o.required) title.appendChild(el("span", "req", " *"));
    label.appendChild(title);
    label.title = o.description || "";
    let input;
    if (o.choices && o.choices.length) {
      input = el("select");
      input.appendChild(el("option", null, ""));
      for (const c of o.choices) { const opt = el("option", null, c.name); opt.value = String(c.value); input.appendChild(opt); }
    } else if (o.type === OPTION.BOOLEAN) {
      input = el("select");
      for (const v of ["", "true", "false"]) { const opt = el("option", null, v); opt.value = v; input.appendChild(opt); }
    } else if ([OPTION.USER, OPTION.MENTIONABLE].includes(o.type)) {
      input = el("select");
      input.appendChild(el("option", null, ""));
      for (const m of snap.members) { const opt = el("option", null, m.name); opt.value = m.id; input.appendChild(opt); }
    } else if (o.type === OPTION.ROLE) {
      input = el("select");
      input.appendChild(el("option", null, ""));
      for (const [id, name] of Object.entries(snap.roles)) { const opt = el("option", null, name); opt.value = id; input.appendChild(opt); }
    } else if (o.type === OPTION.CHANNEL) {
      input = el("select");
      input.appendChild(el("option", null, ""));
      for (const c of snap.channels) { const opt = el("option", null, "#" + c.name); opt.value = c.id; input.appendChild(opt); }
    } else if (o.type === OPTION.ATTACHMENT) {
      input = el("input");
      input.type = "file";
    } else {
      input = el("input");
      input.type = o.type === OPTION.INTEGER || o.type === OPTION.NUMBER ? "number" : "text";
      if (o.type === OPTION.NUMBER) input.step = "any";
      if (o.min_value !== undefined) input.min = o.min_value;
      if (o.max_value !== undefined) input.max = o.max_value;
      if (o.max_length) input.maxLength = o.max_length;
      if (o.name === "prompt") input.placeholder = o.description || "";
      if (o.autocomplete) autocomplete(o, input);
    }
    input.name = o.name;
    input.dataset.type = o.type;
    label.appendChild(input);
    return label;
  }

  function autocomplete(o, input) {
    const list = el("datalist");
    list.id = "ac-" + o.name;
    input.setAttribute("list", list.id);
    let timer = null;
    const ask = () => {
      const leaf = currentLeaf();
      if (!leaf) return;
      act({ action: "autocomplete", command: leaf.path, focused: o.name, options: collect(leaf, true) })
        .then((r) => {
          list.replaceChildren();
          for (const c of r.choices || []) { const opt = el("option", null, c.name); opt.value = String(c.value); list.appendChild(opt); }
        }, showError);
    };
    input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(ask, 200); });
    input.addEventListener("focus", ask);
    queueMicrotask(() => input.parentNode && input.parentNode.appendChild(list));
  }

  function typed(o, raw) {
    if (o.type === OPTION.INTEGER) return parseInt(raw, 10);
    if (o.type === OPTION.NUMBER) return Number(raw);
    if (o.type === OPTION.BOOLEAN) return raw === "true";
    if (o.choices && o.choices.length && typeof o.choices[0].value === "number") return Number(raw);
    return raw;
  }

  function collect(leaf, partial) {
    const options = {};
    for (const o of leaf.options) {
      const input = $("options").querySelector(`[name="${CSS.escape(o.name)}"]`);
      if (!input || o.type === OPTION.ATTACHMENT) continue;
      if (input.value === "") continue;
      options[o.name] = partial ? input.value : typed(o, input.value);
    }
    return options;
  }

  async function submitCommand(event) {
    event.preventDefault();
    showError(null);
    const leaf = currentLeaf();
    if (!leaf) return;
    const attachments = {};
    for (const o of leaf.options.filter((x) => x.type === OPTION.ATTACHMENT)) {
      const input = $("options").querySelector(`[name="${CSS.escape(o.name)}"]`);
      if (input && input.files && input.files[0]) attachments[o.name] = await readFile(input.files[0]);
    }
    const button = $("send");
    button.disabled = true;
    try {
      await act({ action: "invoke", command: leaf.path, options: collect(leaf, false), attachments });
      renderOptions();
    } catch (err) {
      showError(err);
    } finally {
      button.disabled = false;
    }
  }

  async function submitMessage(event) {
    event.preventDefault();
    const files = await Promise.all(Array.from($("say-files").files).map(readFile));
    const content = $("say-text").value;
    if (!content && !files.length) return;
    try {
      await act({ action: "message", content, files });
      $("say-text").value = "";
      $("say-files").value = "";
      showError(null);
    } catch (err) { showError(err); }
  }

  // -- modals --------------------------------------------------------------------------------
  function renderModal() {
    const pending = snap.modals.find((x) => x.user_id === viewer);
    const backdrop = $("modal");
    const key = pending ? pending.interaction_id : "";
    if (key === shownModal) return;
    shownModal = key;
    backdrop.replaceChildren();
    backdrop.hidden = !pending;
    if (!pending) return;
    const modal = pending.modal;
    const form = el("form", "modal");
    form.appendChild(el("h3", null, modal.title || "Form"));
    const fields = [];
    for (const row of modal.components || []) {
      const inner = row.components || (row.component ? [row.component] : []);
      for (const c of inner) {
        if (!c.custom_id) continue;
        const label = el("label", null, c.label || row.label || c.custom_id);
        const input = c.style === 2 ? el("textarea") : el("input");
        input.name = c.custom_id;
        input.value = c.value || "";
        input.placeholder = c.placeholder || "";
        input.required = c.required !== false;
        if (c.max_length) input.maxLength = c.max_length;
        label.appendChild(input);
        form.appendChild(label);
        fields.push(input);
      }
    }
    const actions = el("div", "actions");
    const cancel = el("button", "cancel", "Cancel");
    cancel.type = "button";
    cancel.onclick = () => act({ action: "modal", interaction_id: pending.interaction_id, dismiss: true }).catch(showError);
    const submit = el("button", "submit", "Submit");
    submit.type = "submit";
    actions.append(cancel, submit);
    form.appendChild(actions);
    form.onsubmit = (event) => {
      event.preventDefault();
      const values = Object.fromEntries(fields.map((f) => [f.name, f.value]));
      act({ action: "modal", interaction_id: pending.interaction_id, values }).catch(showError);
    };
    backdrop.appendChild(form);
  }

  // -- control panel ----------------------------------------------------------------------------
  let providersKey = "";
  function renderProviders() {
    const key = JSON.stringify(snap.providers);
    if (key === providersKey) return;
    providersKey = key;
    const box = $("providers");
    box.replaceChildren();
    for (const [pid, behaviour] of Object.entries(snap.providers)) {
      const label = el("label", "provider", pid);
      const s = el("select");
      s.name = "provider-" + pid;
      for (const [value, text] of Object.entries(snap.behaviours)) {
        const opt = el("option", null, text);
        opt.value = value;
        s.appendChild(opt);
      }
      s.value = behaviour;
      s.onchange = () => act({ action: "provider", provider: pid, behaviour: s.value }).catch(showError);
      label.appendChild(s);
      box.appendChild(label);
    }
  }

  // -- wiring -------------------------------------------------------------------------------------
  $("as-user").onchange = (event) => {
    viewer = event.target.value;
    localStorage.setItem("reelbot-sandbox-user", viewer);
    cache.clear();
    shownModal = "";
    if (snap) { renderMessages(); renderModal(); }
  };
  $("command").onchange = renderOptions;
  $("composer").onsubmit = submitCommand;
  $("say").onsubmit = submitMessage;
  $("reset").onclick = () => {
    if (confirm("Start a fresh world? Every message, task and setting is thrown away.")) act({ action: "reset" }).catch(showError);
  };
  // Relative timestamps (<t:…:R>) age on screen; this re-labels them, it fetches nothing.
  setInterval(() => window.Md.refreshTimes($("messages")), 1000);
  connect(250);
})();
