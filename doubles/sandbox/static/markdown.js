// Discord's markdown subset, rendered by building DOM nodes: message text is untrusted,
// so it only ever becomes text nodes (never innerHTML). Exposes window.Md.
"use strict";
(function () {
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const RELATIVE = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
    ["hour", 3600], ["minute", 60], ["second", 1]];

  function relative(unix) {
    const diff = unix - Date.now() / 1000;
    const fmt = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
    for (const [unit, secs] of RELATIVE) {
      if (Math.abs(diff) >= secs || unit === "second") return fmt.format(Math.round(diff / secs), unit);
    }
    return "";
  }

  function formatTime(unix, style) {
    const date = new Date(unix * 1000);
    switch (style) {
      case "t": return date.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
      case "T": return date.toLocaleTimeString();
      case "d": return date.toLocaleDateString();
      case "D": return date.toLocaleDateString([], { dateStyle: "long" });
      case "F": return date.toLocaleString([], { dateStyle: "full", timeStyle: "short" });
      case "R": return relative(unix);
      default: return date.toLocaleString([], { dateStyle: "long", timeStyle: "short" });
    }
  }

  function safeUrl(text) {
    try {
      const url = new URL(text);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) { return null; }
  }

  // Inline rules, earliest match wins; ties go to the first rule listed.
  const RULES = [
    ["code", /`([^`\n]+)`/],
    ["bold", /\*\*([\s\S]+?)\*\*/],
    ["underline", /__([\s\S]+?)__/],
    ["italic", /\*(?!\s)([\s\S]+?)\*/],
    ["italic", /\b_([^_\n]+)_\b/],
    ["strike", /~~([\s\S]+?)~~/],
    ["spoiler", /\|\|([\s\S]+?)\|\|/],
    ["role", /<@&(\d+)>/],
    ["user", /<@!?(\d+)>/],
    ["channel", /<#(\d+)>/],
    ["time", /<t:(-?\d+)(?::([tTdDfFR]))?>/],
    ["link", /\[([^\]\n]+)\]\(<?(https?:\/\/[^\s)>]+)>?\)/],
    ["url", /<?(https?:\/\/[^\s<>]+[^\s<>.,:;"')\]])>?/],
  ];

  function inline(text, ctx, out) {
    while (text) {
      let best = null;
      for (const [kind, re] of RULES) {
        const m = re.exec(text);
        if (m && (best === null || m.index < best.m.index)) best = { kind, m };
      }
      if (best === null) { out.appendChild(document.createTextNode(text)); return; }
      const { kind, m } = best;
      if (m.index) out.appendChild(document.createTextNode(text.slice(0, m.index)));
      out.appendChild(token(kind, m, ctx));
      text = text.slice(m.index + m[0].length);
    }
  }

  function token(kind, m, ctx) {
    const wrap = (tag, cls) => { const n = el(tag, cls); inline(m[1], ctx, n); return n; };
    switch (kind) {
      case "code": return el("code", null, m[1]);
      case "bold": return wrap("strong");
      case "underline": return wrap("u");
      case "italic": return wrap("em");
      case "strike": return wrap("s");
      case "spoiler": {
        const n = wrap("span", "spoiler");
        n.addEventListener("click", () => n.classList.add("shown"));
        return n;
      }
      case "user": {
        const user = ctx.users[m[1]];
        return el("span", "mention", "@" + (user ? user.name : "unknown-user"));
      }
      case "role": return el("span", "mention", "@" + (ctx.roles[m[1]] || "unknown-role"));
      case "channel": {
        const n = el("span", "mention", "#" + (ctx.channelName(m[1]) || "unknown"));
        if (ctx.openChannel && ctx.channelName(m[1])) n.onclick = () => ctx.openChannel(m[1]);
        return n;
      }
      case "time": {
        const n = el("span", "timestamp", formatTime(Number(m[1]), m[2]));
        n.dataset.unix = m[1];
        n.dataset.style = m[2] || "f";
        n.title = new Date(Number(m[1]) * 1000).toLocaleString();
        return n;
      }
      case "link": case "url": {
        const href = safeUrl(kind === "link" ? m[2] : m[1]);
        if (!href) return document.createTextNode(m[0]);
        const a = el("a", null, kind === "link" ? "" : m[1]);
        if (kind === "link") inline(m[1], ctx, a);
        a.href = href;
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        // A link to a channel or thread of this (sandbox) server opens it here.
        const inside = /^https:\/\/(?:\w+\.)?discord\.com\/channels\/\d+\/(\d+)/.exec(href);
        if (inside && ctx.openChannel && ctx.channelName(inside[1])) {
          a.onclick = (event) => { event.preventDefault(); ctx.openChannel(inside[1]); };
        }
        return a;
      }
    }
    return document.createTextNode(m[0]);
  }

  // Block level: code fences, headings, -# subtext, > quotes, lists, plain lines.
  function render(text, ctx) {
    const root = el("div", "md");
    const lines = String(text || "").split("\n");
    let para = [];
    const flush = () => {
      if (!para.length) return;
      const span = el("span");
      inline(para.join("\n"), ctx, span);
      root.appendChild(span);
      para = [];
    };
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      if (line.startsWith("```")) {
        flush();
        const body = [];
        let j = i + 1;
        while (j < lines.length && !lines[j].startsWith("```")) body.push(lines[j++]);
        root.appendChild(el("pre", null, body.join("\n")));
        i = j;
        continue;
      }
      let m;
      if ((m = /^(#{1,3}) (.*)$/.exec(line))) {
        flush();
        const h = el("h" + m[1].length);
        inline(m[2], ctx, h);
        root.appendChild(h);
      } else if ((m = /^-# (.*)$/.exec(line))) {
        flush();
        const s = el("span", "sub");
        inline(m[1], ctx, s);
        root.appendChild(s);
      } else if ((m = /^> ?(.*)$/.exec(line))) {
        flush();
        const q = el("blockquote");
        inline(m[1], ctx, q);
        root.appendChild(q);
      } else {
        para.push(line.replace(/^(\s*)[-*] /, "$1• "));
      }
    }
    flush();
    return root;
  }

  function refreshTimes(root) {
    for (const n of root.querySelectorAll(".timestamp[data-style=R]")) {
      n.textContent = formatTime(Number(n.dataset.unix), "R");
    }
  }

  window.Md = { render, formatTime, safeUrl, refreshTimes, el };
})();
