// Typeset display equations with MathJax (the TeX input and SVG output that the book's HTML uses)
// and print the width of each one.
//
// stdin:  JSON {"preamble": [str], "equations": [{"id": str, "tex": str}]}: the preamble holds the
//         book's macro definitions (\newcommand ...), typeset first so the equations can use them;
//         each tex is the TeX between $$ and $$, \tag{...} included
// stdout: JSON list of {"id": str, "width_ex": float, "error": str|null}
//
// Units. MathJax's SVG output gives an <svg> a width in ex of the surrounding text, so a browser
// draws it width_ex * (x-height of the page font) pixels wide; the caller converts to pixels.
// A display with a \tag gets width="100%" and style "min-width: W ex": the tag sits at the right
// margin and the equation is centred, so W (equation, tag and the space between) is what must fit.
import {mathjax} from 'mathjax-full/js/mathjax.js';
import {TeX} from 'mathjax-full/js/input/tex.js';
import {SVG} from 'mathjax-full/js/output/svg.js';
import {liteAdaptor} from 'mathjax-full/js/adaptors/liteAdaptor.js';
import {RegisterHTMLHandler} from 'mathjax-full/js/handlers/html.js';
import {AllPackages} from 'mathjax-full/js/input/tex/AllPackages.js';
import {readFileSync} from 'node:fs';

const adaptor = liteAdaptor();
RegisterHTMLHandler(adaptor);

let lastError = null;
const tex = new TeX({
  // all packages, as the browser's tex-chtml-full.js, but an undefined macro is an error here, not red text
  packages: AllPackages.filter((name) => !['bussproofs', 'noundefined'].includes(name)),
  formatError(jax, err) { lastError = err.message; return jax.formatError(err); },
});
const svg = new SVG({fontCache: 'none'});
const html = mathjax.document('', {InputJax: tex, OutputJax: svg});

function widthEx(node) {
  const el = adaptor.firstChild(node);  // the <svg>
  const style = adaptor.getAttribute(el, 'style') || '';
  const min = style.match(/min-width:\s*([\d.]+)ex/);
  if (min) return parseFloat(min[1]);
  const width = adaptor.getAttribute(el, 'width') || '';
  const m = width.match(/^([\d.]+)ex$/);
  if (!m) throw new Error(`unexpected svg width ${JSON.stringify(width)} / style ${JSON.stringify(style)}`);
  return parseFloat(m[1]);
}

const {preamble = [], equations} = JSON.parse(readFileSync(0, 'utf8'));
for (const source of preamble) {
  lastError = null;
  html.convert(source, {display: false, em: 16, ex: 8});
  if (lastError) throw new Error(`macro definition ${JSON.stringify(source)}: ${lastError}`);
}
const out = equations.map(({id, tex: source}) => {
  lastError = null;
  const node = html.convert(source, {display: true, em: 16, ex: 8, containerWidth: 80 * 16});
  return {id, width_ex: widthEx(node), error: lastError};
});
process.stdout.write(JSON.stringify(out) + '\n');
