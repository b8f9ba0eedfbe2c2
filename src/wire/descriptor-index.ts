import { toBinary, type DescFile, type DescService } from "@bufbuild/protobuf";
import {
  FileDescriptorProtoSchema,
  type DescriptorProto,
  type EnumDescriptorProto,
  type FieldDescriptorProto,
} from "@bufbuild/protobuf/wkt";

/**
 * What server reflection answers from: the files of the served services and every file
 * they import (google/protobuf/*.proto included), by file name, by symbol and by extension.
 * Built once; the serialized FileDescriptorProtos are cached, so a grpcurl session costs
 * no re-encoding.
 */
export interface DescriptorIndex {
  /** Fully qualified names of the served services, in the order given. */
  readonly serviceNames: readonly string[];
  fileByName(name: string): DescFile | undefined;
  /** The file defining a fully qualified symbol: service, method, message, field, oneof, enum, enum value, extension. */
  fileBySymbol(symbol: string): DescFile | undefined;
  /** The file defining extension `number` of message `extendee`. */
  fileByExtension(extendee: string, number: number): DescFile | undefined;
  /** Extension numbers of a message type; undefined for an unknown type. */
  extensionNumbers(typeName: string): number[] | undefined;
  /** `file` first, then its transitive imports not in `alreadySent` (which this adds to). */
  withDependencies(file: DescFile, alreadySent: Set<string>): Uint8Array[];
}

export function createDescriptorIndex(services: readonly DescService[]): DescriptorIndex {
  const files = new Map<string, DescFile>();
  const symbols = new Map<string, DescFile>();
  const messageTypes = new Set<string>();
  const extensions = new Map<string, Map<number, DescFile>>();
  const encoded = new Map<DescFile, Uint8Array>();

  // Symbols are read from the FileDescriptorProto rather than the Desc* objects: it also
  // holds the synthetic map-entry messages (e.g. HealthListResponse.StatusesEntry), which
  // reflection clients resolve by name too.
  function addExtension(ext: FieldDescriptorProto, scope: string, file: DescFile): void {
    symbols.set(scope + ext.name, file);
    const extendee = ext.extendee.startsWith(".") ? ext.extendee.slice(1) : ext.extendee;
    let byNumber = extensions.get(extendee);
    if (byNumber === undefined) extensions.set(extendee, (byNumber = new Map()));
    byNumber.set(ext.number, file);
  }

  function addEnum(desc: EnumDescriptorProto, scope: string, file: DescFile): void {
    symbols.set(scope + desc.name, file);
    // Enum values are scoped beside their enum, not inside it (protobuf scoping rules).
    for (const value of desc.value) symbols.set(scope + value.name, file);
  }

  function addMessage(desc: DescriptorProto, scope: string, file: DescFile): void {
    const typeName = scope + desc.name;
    symbols.set(typeName, file);
    messageTypes.add(typeName);
    const inner = `${typeName}.`;
    for (const field of desc.field) symbols.set(inner + field.name, file);
    for (const oneof of desc.oneofDecl) symbols.set(inner + oneof.name, file);
    for (const nested of desc.nestedType) addMessage(nested, inner, file);
    for (const nested of desc.enumType) addEnum(nested, inner, file);
    for (const ext of desc.extension) addExtension(ext, inner, file);
  }

  function addFile(file: DescFile): void {
    const proto = file.proto;
    if (files.has(proto.name)) return;
    files.set(proto.name, file);
    const scope = proto.package === "" ? "" : `${proto.package}.`;
    for (const service of proto.service) {
      symbols.set(scope + service.name, file);
      for (const method of service.method) symbols.set(`${scope}${service.name}.${method.name}`, file);
    }
    for (const message of proto.messageType) addMessage(message, scope, file);
    for (const desc of proto.enumType) addEnum(desc, scope, file);
    for (const ext of proto.extension) addExtension(ext, scope, file);
    for (const dependency of file.dependencies) addFile(dependency);
  }

  for (const service of services) addFile(service.file);

  function bytesOf(file: DescFile): Uint8Array {
    let bytes = encoded.get(file);
    if (bytes === undefined) encoded.set(file, (bytes = toBinary(FileDescriptorProtoSchema, file.proto)));
    return bytes;
  }

  return {
    serviceNames: services.map((service) => service.typeName),
    fileByName: (name) => files.get(name),
    fileBySymbol: (symbol) => symbols.get(symbol.startsWith(".") ? symbol.slice(1) : symbol),
    fileByExtension: (extendee, number) => extensions.get(extendee)?.get(number),
    extensionNumbers(typeName) {
      if (!messageTypes.has(typeName)) return undefined;
      return [...(extensions.get(typeName)?.keys() ?? [])].sort((a, b) => a - b);
    },
    withDependencies(file, alreadySent) {
      // The requested file is always sent (the caller asked for it by name); its imports
      // only once per stream, as grpc-go does — clients keep what they received.
      const out: Uint8Array[] = [bytesOf(file)];
      alreadySent.add(file.proto.name);
      const queue = [...file.dependencies];
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        if (alreadySent.has(next.proto.name)) continue;
        alreadySent.add(next.proto.name);
        out.push(bytesOf(next));
        queue.push(...next.dependencies);
      }
      return out;
    },
  };
}
