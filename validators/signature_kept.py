"""The delivered function is the one the job asks for: its name, and parameters every call can bind to.

What is required (docs/review-rubric.md `signature-changed`):
- the name of the prompt's signature, else of the function its tests or examples call, case included
  (`find_Product`, not `find_product`);
- for a prompt that is code, the prompt's parameters verbatim: names, order and kinds (changed
  annotations or defaults are minor: reported in `details`, not failed);
- for every call in the tests and examples, parameters it binds to (`f(1, 2)` needs two positionals).
Each of the first kind of problem is critical: the tests, or the user's callers, break.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from validators.base import Evidence, Report, ValidationContext
from validators.code_function import FunctionNode, def_line, delivered_function, parse_quietly, top_level_functions
from validators.code_task import expected_name, given_signature
from validators.sandbox.examples import example_tests


@dataclass(frozen=True)
class SignatureKept:
    name: str = "signature_kept"

    def check(self, text: str, context: ValidationContext) -> Report:
        tree = parse_quietly(text)
        job = context.input
        wanted = expected_name(job) if job.get("prompt") else None
        if tree is None or not wanted:
            return Report(self.name, True, 1.0, "nothing to compare" if tree is not None
                          else "does not parse (python_syntax reports it)")
        fn = delivered_function(tree, job)
        span = def_line(text, fn) if fn is not None else None
        if fn is None or fn.name != wanted:
            others = ", ".join(f"{f.name}()" for f in top_level_functions(tree)) or "no function"
            evidence = (Evidence(span[0], span[1], text[span[0]:span[1]], f"expected {wanted}()"),) if span else ()
            return Report(self.name, False, 0.0, f"the job asks for {wanted}() but the code defines {others}",
                          evidence)
        problems, minor = [], []
        signature = given_signature(job)
        if signature:
            problems_here, minor_here = compare_with_prompt(fn, signature)
            problems += problems_here
            minor += minor_here
        for call in calls_to(wanted, [*(job.get("tests") or []), *example_tests(job["prompt"])]):
            why = binding_problem(fn, call)
            if why:
                problems.append(why)
                break
        if problems:
            return Report(self.name, False, 0.0, "; ".join(problems),
                          (Evidence(span[0], span[1], text[span[0]:span[1]], "signature"),), {"minor": minor})
        return Report(self.name, True, 1.0, f"{wanted}() keeps its signature", details={"minor": minor})


def parameters(args: ast.arguments) -> list[tuple[str, str]]:
    """(kind, name) in order: kinds posonly / positional / *args / kwonly / **kwargs."""
    out = [("posonly", a.arg) for a in args.posonlyargs] + [("positional", a.arg) for a in args.args]
    if args.vararg:
        out.append(("*args", args.vararg.arg))
    out += [("kwonly", a.arg) for a in args.kwonlyargs]
    if args.kwarg:
        out.append(("**kwargs", args.kwarg.arg))
    return out


def compare_with_prompt(fn: FunctionNode, signature: str) -> tuple[list[str], list[str]]:
    tree = parse_quietly(f"{signature}\n    pass\n")
    if tree is None or not top_level_functions(tree):
        return [], []
    theirs = top_level_functions(tree)[0]
    problems, minor = [], []
    want, got = parameters(theirs.args), parameters(fn.args)
    if want != got:
        problems.append(f"parameters ({', '.join(n for _, n in got)}) differ from the prompt's "
                        f"({', '.join(n for _, n in want)})")
    elif ast.dump(theirs.args) != ast.dump(fn.args) or ast.dump(theirs.returns or ast.Constant(None)) != \
            ast.dump(fn.returns or ast.Constant(None)):
        minor.append("annotations or defaults differ from the prompt's signature")
    return problems, minor


def calls_to(name: str, sources: list[str]) -> list[ast.Call]:
    calls = []
    for source in sources:
        tree = parse_quietly(source)
        if tree is None:
            continue
        calls += [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                  and n.func.id == name]
    return calls


def binding_problem(fn: FunctionNode, call: ast.Call) -> str | None:
    """Why `call` cannot bind to `fn`'s parameters (counting positionals and naming keywords), or None."""
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return None  # *xs / **kw: cannot count without running it
    args = fn.args
    positional = [a.arg for a in args.posonlyargs + args.args]
    defaults = len(args.defaults)
    n = len(call.args)
    if n > len(positional) and args.vararg is None:
        return f"the tests call {fn.name}() with {n} arguments; it takes at most {len(positional)}"
    named = {k.arg for k in call.keywords}
    known = set(positional[len(args.posonlyargs):]) | {a.arg for a in args.kwonlyargs}
    unknown = sorted(named - known) if args.kwarg is None else []
    if unknown:
        return f"the tests pass {unknown[0]}= to {fn.name}(), which has no such parameter"
    required = positional[:len(positional) - defaults]
    missing = [p for p in required[n:] if p not in named]
    required_kw = [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is None and a.arg not in named]
    if missing or required_kw:
        return f"the tests call {fn.name}() without {(missing + required_kw)[0]}, which it requires"
    return None
