import { create, createFileRegistry, fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ChatService } from "../../gen/sluice/v1/chat_service_pb.js";
import { ModelService } from "../../gen/sluice/v1/model_service_pb.js";
import { createReflectionService, reflectionServices } from "./reflection-service.js";

const served = [ChatService, ModelService, Health, ...reflectionServices];

function client() {
  const reflection = createReflectionService({ services: served });
  return createClient(
    v1.ServerReflection,
    createRouterTransport((router) => reflection.register(router)),
  );
}

type Request = MessageInitShape<typeof v1.ServerReflectionRequestSchema>;

/** Sends requests on one stream; returns the responses, in order. */
async function ask(requests: Request[]): Promise<v1.ServerReflectionResponse[]> {
  async function* send() {
    for (const request of requests) yield create(v1.ServerReflectionRequestSchema, request);
  }
  const out: v1.ServerReflectionResponse[] = [];
  for await (const response of client().serverReflectionInfo(send())) out.push(response);
  return out;
}

function fileNames(response: v1.ServerReflectionResponse): string[] {
  if (response.messageResponse.case !== "fileDescriptorResponse") throw new Error(`got ${response.messageResponse.case}`);
  return response.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name);
}

const symbol = (value: string): Request => ({ host: "h", messageRequest: { case: "fileContainingSymbol", value } });

describe("gRPC server reflection", () => {
  it("lists every served service, echoing the request and host", async () => {
    const [response] = await ask([{ host: "example:8080", messageRequest: { case: "listServices", value: "" } }]);
    expect(response!.validHost).toBe("example:8080");
    expect(response!.originalRequest?.messageRequest.case).toBe("listServices");
    expect(response!.messageResponse.case).toBe("listServicesResponse");
    const names =
      response!.messageResponse.case === "listServicesResponse" ? response!.messageResponse.value.service.map((s) => s.name) : [];
    expect(names).toEqual([
      "sluice.v1.ChatService",
      "sluice.v1.ModelService",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
    ]);
  });

  it("file_containing_symbol sends the file and its transitive imports, enough to rebuild every type", async () => {
    const [response] = await ask([symbol("sluice.v1.ChatService")]);
    const names = fileNames(response!);
    expect(names[0]).toBe("sluice/v1/chat_service.proto");
    expect(names).toEqual(
      expect.arrayContaining(["sluice/v1/chat.proto", "google/protobuf/struct.proto", "google/protobuf/empty.proto"]),
    );
    const protos =
      response!.messageResponse.case === "fileDescriptorResponse"
        ? response!.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b))
        : [];
    // Resolved the way grpcurl does: the first file, its imports looked up among the rest.
    const byName = new Map(protos.map((p) => [p.name, p]));
    const registry = createFileRegistry(protos[0]!, (name) => byName.get(name));
    const service = registry.getService("sluice.v1.ChatService");
    expect(service?.methods.map((m) => m.name)).toEqual(["Complete", "StreamComplete"]);
    expect(registry.getMessage("sluice.v1.CompleteRequest")?.field.messages?.number).toBe(2);
  });

  it("finds methods, messages, nested types, fields, enums and enum values", async () => {
    const responses = await ask([
      symbol("sluice.v1.ChatService.StreamComplete"),
      symbol("sluice.v1.CompleteRequest"),
      symbol("sluice.v1.CompleteRequest.model"),
      symbol("sluice.v1.Role"),
      symbol("sluice.v1.ROLE_USER"),
      symbol("grpc.health.v1.HealthCheckResponse.ServingStatus"),
      symbol("grpc.health.v1.HealthCheckResponse.SERVING"),
      symbol("grpc.health.v1.HealthListResponse.StatusesEntry"),
      symbol("google.protobuf.Struct"),
    ]);
    expect(responses.map((r) => fileNames(r)[0])).toEqual([
      "sluice/v1/chat_service.proto",
      "sluice/v1/chat_service.proto",
      "sluice/v1/chat_service.proto",
      "sluice/v1/chat.proto",
      "sluice/v1/chat.proto",
      "grpc/health/v1/health.proto",
      "grpc/health/v1/health.proto",
      "grpc/health/v1/health.proto",
      "google/protobuf/struct.proto",
    ]);
  });

  it("sends each import once per stream, but always the file asked for", async () => {
    const [first, second, third] = await ask([
      symbol("sluice.v1.ChatService"),
      symbol("sluice.v1.Message"),
      { host: "", messageRequest: { case: "fileByFilename", value: "sluice/v1/chat_service.proto" } },
    ]);
    expect(fileNames(first!).length).toBeGreaterThan(1);
    expect(fileNames(second!)).toEqual(["sluice/v1/chat.proto"]);
    expect(fileNames(third!)).toEqual(["sluice/v1/chat_service.proto"]);
  });

  it("answers NOT_FOUND for unknown symbols, files and types, and the stream goes on", async () => {
    const responses = await ask([
      symbol("sluice.v1.Nope"),
      { host: "", messageRequest: { case: "fileByFilename", value: "nope.proto" } },
      { host: "", messageRequest: { case: "allExtensionNumbersOfType", value: "nope.Type" } },
      {
        host: "",
        messageRequest: { case: "fileContainingExtension", value: { containingType: "sluice.v1.Message", extensionNumber: 99 } },
      },
      { host: "", messageRequest: { case: "allExtensionNumbersOfType", value: "sluice.v1.Message" } },
    ]);
    for (const response of responses.slice(0, 4)) {
      expect(response.messageResponse).toMatchObject({ case: "errorResponse", value: { errorCode: 5 } });
    }
    expect(responses[4]!.messageResponse).toMatchObject({
      case: "allExtensionNumbersResponse",
      value: { baseTypeName: "sluice.v1.Message", extensionNumber: [] },
    });
  });

  it("serves v1alpha the same way (older grpcurl and tools ask it)", async () => {
    const reflection = createReflectionService({ services: served });
    const alpha = createClient(
      v1alpha.ServerReflection,
      createRouterTransport((router) => reflection.register(router)),
    );
    async function* send() {
      yield create(v1alpha.ServerReflectionRequestSchema, {
        messageRequest: { case: "fileContainingSymbol", value: "sluice.v1.ModelService" },
      });
    }
    const responses: v1alpha.ServerReflectionResponse[] = [];
    for await (const response of alpha.serverReflectionInfo(send())) responses.push(response);
    expect(responses[0]!.messageResponse.case).toBe("fileDescriptorResponse");
  });
});
