//! The pages' built-in stylesheet.

/// The built-in style; `%PRIMARY%` and `%BACKGROUND%` are the brand's colours (validated
/// `#rgb`/`#rrggbb`, so nothing can leave the CSS).
pub(crate) const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:%BACKGROUND%;color:#1d2330;margin:0}\
main{max-width:28rem;margin:3rem auto;background:#fff;color:#1d2330;padding:2rem;border-radius:12px;box-shadow:0 2px 12px rgba(0,0,0,.08)}\
@media (max-width:32rem){main{margin:0;border-radius:0;box-shadow:none;padding:1.25rem}}\
.brand{margin:0 0 1rem}.brand img{display:block;max-width:100%;max-height:3rem;height:auto}\
h1{font-size:1.4rem;margin:0 0 .5rem}p{line-height:1.5}label{display:block;font-weight:600;margin:1rem 0 .3rem}\
input[type=text]{width:100%;box-sizing:border-box;font-size:1.1rem;padding:.6rem;border:1px solid #6b7385;border-radius:8px}input[inputmode=numeric]{letter-spacing:.15em;font-size:1.3rem}\
input[type=checkbox]{width:1.25rem;height:1.25rem;margin:0}\
a:focus,input:focus,button:focus,summary:focus{outline:3px solid %PRIMARY%;outline-offset:2px}\
button{margin-top:1rem;width:100%;min-height:2.75rem;font-size:1.05rem;padding:.7rem;border:2px solid transparent;border-radius:8px;background:%PRIMARY%;color:#fff;cursor:pointer}\
button:disabled{opacity:.6;cursor:wait}summary{cursor:pointer;padding:.4rem 0}\
.err{background:#fdecec;color:#8a1c1c;padding:.6rem .8rem;border-radius:8px}.muted{color:#5b6474;font-size:.9rem}\
code.secret{display:block;word-break:break-all;background:#f0f2f6;padding:.5rem;border-radius:6px;font-size:1rem}\
.qr{text-align:center;margin:1rem 0}.method{margin:1.2rem 0}.inline{display:inline-block;margin:.3rem .3rem 0 0}.inline input[type=text]{width:auto;font-size:1rem;letter-spacing:0;padding:.35rem}button.small{width:auto;font-size:.9rem;padding:.35rem .7rem;margin-top:.3rem}button.danger{background:#b3261e}button.secondary{background:#5b6474}.factor,.devices li{border-top:1px solid #e3e6eb;padding:.7rem 0;list-style:none}ul.factors,ul.devices{padding:0}.ok{background:#e7f6ec;color:#17552c;padding:.6rem .8rem;border-radius:8px}.check{font-weight:400;display:flex;gap:.5rem;align-items:center}.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}h2{font-size:1.1rem;margin-top:1.6rem}.qr svg{width:220px;height:220px;max-width:100%}ul{padding-left:1.2rem}";
