/**
 * Docker daemon configuration as data (pure): JSON values, and a fragment of daemon.json that one
 * input or phase contributes to the one merged file.
 */

export type Json = null | boolean | number | string | Json[] | {[key: string]: Json}
/** A JSON object: the shape of daemon.json and of every fragment of it. */
export type JsonObject = {[key: string]: Json}

/** Part of daemon.json and who asks for it, for warnings and contradictions. */
export interface Fragment {
  source: string
  value: JsonObject
}

/** True for a JSON object (not an array, not null). */
export function isJsonObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** The same value with every object's keys sorted: equal meaning, equal text. */
export function canonical(v: Json): Json {
  if (Array.isArray(v)) return v.map(canonical)
  if (!isJsonObject(v)) return v
  return Object.fromEntries(
    Object.keys(v)
      .sort()
      .map(k => [k, canonical(v[k])])
  )
}
