/** What the default codec says about a value it refuses: where it is, what JSON would make of it, what to use. */
/** Nesting beyond this is refused: JSON.stringify runs out of stack at about twice as deep, and no session needs it. */
export const MAX_DEPTH = 2000;

/** The key of the one-key object `jsonWithDates` stores a `Date` as. */
export const DATE_TAG = "$date";

/**
 * Why the walk stopped. It travels up beside the walk's `undefined` answer, and
 * each level adds its key to `path` on the way: nothing is allocated for paths
 * unless a value is refused. The message is made only then, from `kind` and
 * `value`, which also keeps the walk itself small enough for V8 to optimize well.
 */
export interface Refusal {
  /** The keys from the refused spot up to the root, deepest first. */
  readonly path: (string | number)[];
  /** Where the refused primitive was (`"property"`, `"element"`, `"whole"`), or what is wrong with the object. */
  readonly kind: "property" | "element" | "whole" | "hole" | "object" | "toJSON" | "tagged" | "cycle" | "deep";
  readonly value: unknown;
  /** For a cycle: how many keys of the path lead to the object it comes back to. */
  readonly cycleAt: number;
}

const KEEPS_MORE = "use superjson or devalue, which keep Map, Set, Date and BigInt";

/** The message for a refusal: its path, then what is there, what JSON would make of it, and what to do instead. */
export function explain(refusal: Refusal, dates: boolean): string {
  const path = refusal.path.reverse();
  const { kind, value } = refusal;
  let problem: string;
  if (kind === "cycle") {
    problem = `is ${show(path.slice(0, refusal.cycleAt))} again, a cycle; use devalue or superjson, which keep cycles`;
  } else if (kind === "deep") {
    problem = `is nested ${MAX_DEPTH} levels deep; store it flatter`;
  } else if (kind === "toJSON") {
    problem = "has a toJSON method, whose result JSON would store instead; store plain data";
  } else if (kind === "tagged") {
    problem = `is an object whose only key is "${DATE_TAG}", which would read back as a Date; rename the key`;
  } else if (kind === "hole") {
    problem = "is a hole in a sparse array, which JSON stores as null; fill it, or use devalue";
  } else if (kind === "object") {
    problem = unplain(value as object, dates);
  } else if (typeof value === "bigint") {
    problem = `is a BigInt, which JSON cannot store; ${KEEPS_MORE}`;
  } else if (typeof value === "number") {
    problem = `is ${value}, which JSON stores as null; use superjson or devalue, which keep it`;
  } else if (value === undefined) {
    problem = "is undefined, which JSON stores in an array as null; use null, or devalue";
  } else {
    const becomes = kind === "property" ? "leaves out" : kind === "element" ? "stores as null" : "cannot store";
    problem = `is a ${typeof value}, which JSON ${becomes}; store plain data`;
  }
  return `${show(path)} ${problem}`;
}

/** What an object is, as messages name it: `a Map`, `an Array`, `an object with a custom prototype`. */
export const kindOf = (value: object): string => article(nameOf(Object.getPrototypeOf(value), tagOf(value)));

const tagOf = (value: object) => Object.prototype.toString.call(value).slice(8, -1);

/** What is wrong with an object whose prototype is not a plain object's (or a plain array's). */
function unplain(value: object, dates: boolean): string {
  const proto: unknown = Object.getPrototypeOf(value);
  const tag = tagOf(value);
  const name = nameOf(proto, tag);
  if (Array.isArray(value))
    return `is ${article(name)} (an Array subclass), which JSON stores as an Array; store a plain array`;
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime()))
      return "is an invalid Date, which JSON stores as null; store null or a valid Date";
    if (proto !== Date.prototype) {
      return `is ${article(name)} (a Date subclass), which reads back as ${dates ? "a Date" : "a string"}; store a plain Date`;
    }
    return "is a Date, which JSON stores as a string; use jsonWithDates, superjson or devalue";
  }
  if (value instanceof Map || value instanceof Set)
    return `is ${article(name)}, which JSON stores as {}; ${KEEPS_MORE}`;
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    return `is ${article(name)}, which JSON stores as an object of numbers; use superjson or devalue, which keep typed arrays`;
  }
  if (value instanceof ArrayBuffer)
    return `is ${article(name)}, which JSON stores as {}; use devalue, which keeps ArrayBuffer`;
  if (value instanceof RegExp)
    return `is ${article(name)}, which JSON stores as {}; use superjson or devalue, which keep RegExp`;
  if (value instanceof Error)
    return `is ${article(name)}, which JSON stores as {}; store its message, or use superjson`;
  if (value instanceof String || value instanceof Number || value instanceof Boolean) {
    return `is ${article(name)} object; store the primitive ${tag.toLowerCase()} instead`;
  }
  return `is ${article(name)}, which JSON stores as a plain object; store one, or use superjson with registerClass`;
}

/** The name of the class whose prototype `proto` is, as messages show it. */
function nameOf(proto: unknown, fallback: string): string {
  // The descriptor, not proto.constructor: a getter there would run.
  const classFunction: unknown =
    typeof proto === "object" && proto !== null ? Object.getOwnPropertyDescriptor(proto, "constructor")?.value : null;
  const className: unknown = typeof classFunction === "function" ? classFunction.name : undefined;
  return typeof className === "string" && className !== ""
    ? className
    : fallback === "Object"
      ? "object with a custom prototype"
      : fallback;
}

// "U" counts as a consonant: a Uint8Array, a User.
const article = (name: string) => `${/^[aeio]/i.test(name) ? "an" : "a"} ${name}`;

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** A path as code would write it: `value.cart.items[3]`, `value["a b"]`; long ones shortened in the middle. */
function show(path: readonly (string | number)[]): string {
  const step = (key: string | number) =>
    typeof key === "number"
      ? `[${key}]`
      : IDENTIFIER.test(key) && key.length <= 40
        ? `.${key}`
        : `[${JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key)}]`;
  const steps = path.length > 12 ? [...path.slice(0, 6).map(step), "…", ...path.slice(-4).map(step)] : path.map(step);
  return `value${steps.join("")}`;
}
